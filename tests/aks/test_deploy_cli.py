"""`iotctl deploy aks` through CliRunner against the fakes: FakeTerraform (recording), FakeKeyVault,
FakeResourceManager and FakeContainerRegistry (the real Azure SDKs, HTTP over TLS), FakeKubernetes (the one cluster
boundary) and a loopback chart repository with stand-ins for the Argo CD and ESO charts.

What this shows: the order of the steps, what each gets from the previous one (Terraform outputs into the vault, the
kubeconfig, the ApplicationSet and the checks), the questions asked, the progress shown, the registration, and the
one-line errors. What it cannot show: that Azure, AKS, Argo CD or ESO behave like the fakes — only a real
subscription shows that (docs/deploy-aks.md, "What is verified here").
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from iotctl.environments import load
from tests.aks.conftest import ACR_HOST, CLUSTER_ID, ISSUER, OPERATOR_ADDRESS, lb_status
from tests.aks.fake_kubernetes import for_env
from tests.aks.fake_kubernetes import load as load_status

REPO = Path(__file__).resolve().parents[2]


def _appset(cluster) -> dict:
    return cluster.objects[("argoproj.io/v1alpha1", "ApplicationSet", "argocd", "iots6")]


def test_first_deploy_of_dev_from_nothing_to_a_registered_environment(harness):
    result = harness.cli(*harness.deploy_args("dev", "--yes"))
    err, out = result.stderr, result.stdout

    # Terraform: platform first, its environment_inputs[dev] as the environment root's `platform` variable.
    assert harness.terraform.commands() == [
        ("platform", "init"),
        ("platform", "plan"),
        ("platform", "show"),
        ("platform", "apply"),
        ("platform", "output"),
        ("environment:dev", "init"),
        ("environment:dev", "plan"),
        ("environment:dev", "show"),
        ("environment:dev", "apply"),
        ("environment:dev", "output"),
    ]
    env_plan = next(c for c in harness.terraform.calls() if c["root"] == "environment:dev" and c["argv"][0] == "plan")
    var_files = list(env_plan["var_files"].items())
    assert var_files[0][0].endswith("aks/environment/environments/dev.tfvars"), "the committed sizing comes first"
    ours = json.loads(var_files[-1][1])
    assert ours["platform"]["oidc_issuer_url"] == ISSUER and ours["platform"]["postgres_subnet_id"].endswith(
        "dev-postgres"
    )
    assert ours["key_vault_allowed_cidrs"] == [f"{OPERATOR_ADDRESS}/32"], "the detected address, as a /32"
    platform_plan = next(c for c in harness.terraform.calls() if c["root"] == "platform" and c["argv"][0] == "plan")
    assert json.loads(list(platform_plan["var_files"].values())[-1]) == {
        "api_server_authorized_ip_ranges": [f"{OPERATOR_ADDRESS}/32"],
        "location": "westeurope",
    }
    assert platform_plan["tf_data_dir"] != env_plan["tf_data_dir"], "each root has its own data dir and state"
    assert harness.cloud.echo_requests, "the operator's address was detected"

    # Secrets: every catalog secret in the vault, postgres-admin-password too (dev's in-cluster database).
    assert "postgres-admin-password" in harness.cloud.vault.secrets
    assert "tls-broker-crt" in harness.cloud.vault.secrets

    # Cluster credentials: one 0600 kubeconfig with the AKS server's CA and an Entra ID token.
    kubeconfig = harness.state / "deploy" / "aks" / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].endswith("azmk8s.io:443")
    aks_tokens = [t for t, s in harness.cloud.vault.token_scopes.items() if s.startswith("6dae42f8")]
    assert config["users"][0]["user"]["token"] in aks_tokens

    # Argo CD and ESO from the (mirrored) charts, the metrics settings, the ApplicationSet with dev's element.
    applied = {(o["kind"], o["metadata"]["name"]) for o in harness.cluster.applied}
    assert {("Deployment", "argocd-server"), ("Deployment", "external-secrets-webhook")} <= applied
    assert ("Deployment", "argocd-dex-server") not in applied, "iotctl's values (no Dex) reached the chart"
    assert ("Pod", "argocd-test") not in applied, "test hooks are not installed"
    configmap = harness.cluster.objects[("v1", "ConfigMap", "kube-system", "ama-metrics-settings-configmap")]
    assert configmap["data"]["pod-annotation-based-scraping"] == 'podannotationnamespaceregex = "iots6-.*"'
    elements = _appset(harness.cluster)["spec"]["generators"][0]["list"]["elements"]
    assert [e["env"] for e in elements] == ["dev"]
    assert (
        elements[0]["keyVaultUri"] == harness.cloud.vault_url
        and elements[0]["containerRegistryLoginServer"] == ACR_HOST
    )
    assert elements[0]["repoURL"] == "https://github.com/example/iotctl.git" and elements[0]["autoSync"] is True

    # The images of values-dev.yaml were looked up in the registry with a pull token.
    assert ("HEAD", "/v2/iots6-ingest/manifests/0.1.0") in harness.cloud.acr.requests

    # Registered: broker over TLS on 8883, the config server over HTTPS, credentials in the vault, CA on disk.
    env = load(harness.state, "dev")
    assert (env.kind, env.broker.host, env.broker.port, env.broker.tls) == (
        "aks",
        "mqtt.dev.iots6.example.com",
        8883,
        True,
    )
    assert (
        env.credentials == f"keyvault:{harness.cloud.vault_url}"
        and env.config_url == "https://config.dev.iots6.example.com"
    )
    assert env.ca_file.read_text() == harness.cloud.vault.value("tls-ca-crt")
    assert env.database.access == "job"

    # Progress in a pipe: plain lines; the result on stdout names the endpoints and the DNS records to create.
    assert "deploy aks: terraform: apply aks/platform (3 to create)" in err
    assert "deploy aks: rollout: Application argocd/iots6-dev: Synced/Healthy" in err
    assert "\x1b[" not in err + out
    assert "broker: mqtts://mqtt.dev.iots6.example.com:8883 (load balancer 20.103.5.17)" in out
    assert "DNS: config.dev.iots6.example.com A 20.103.5.18" in out


def test_a_second_run_changes_nothing_and_seeds_nothing(harness):
    harness.cli(*harness.deploy_args("dev", "--yes"))
    versions = {name: len(v) for name, v in harness.cloud.vault.secrets.items()}
    harness.cluster.polls = 0
    result = harness.cli(*harness.deploy_args("dev", "--json"))  # no --yes needed: nothing to apply
    data = json.loads(result.stdout)
    assert [p["applied"] for p in data["plans"]] == [False, False]
    assert data["secrets"]["created"] == [] and {n: len(v) for n, v in harness.cloud.vault.secrets.items()} == versions
    assert "terraform: aks/platform is up to date" in result.stderr
    assert data["endpoints"]["broker"] == "mqtts://mqtt.dev.iots6.example.com:8883"


def test_inputs_are_remembered_so_a_bare_rerun_works(harness):
    harness.cli(*harness.deploy_args("dev", "--yes"))
    harness.cluster.polls = 0
    harness.env["IOTCTL_AKS_IP_ECHO_URL"] = "https://echo.invalid/"  # no address today: the remembered one stays
    result = harness.cli("deploy", "aks", "--env", "dev", "--chart-mirror", harness.chart_repo.url, "--json")
    assert json.loads(result.stdout)["environment"] == "dev"
    assert "keeping the remembered allow-list 20.61.7.19/32" in result.stderr


def test_without_a_terminal_a_plan_is_not_applied_without_yes(harness):
    result = harness.cli(*harness.deploy_args("dev"), ok=False)
    assert result.exit_code == 6
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Apply the plan of aks/platform (3 to create): not asking without a terminal; pass --yes to go ahead."
    )
    assert ("platform", "apply") not in harness.terraform.commands()


def test_the_first_run_names_each_missing_input(harness):
    result = harness.cli("deploy", "aks", "--env", "dev", "--allow-cidr", "20.61.7.19", ok=False)
    assert result.exit_code == 6
    assert "error: The Azure region (e.g. westeurope) is not known yet; pass --location" in result.stderr
    result = harness.cli("deploy", "aks", "--env", "qa", ok=False)
    assert "error: `qa` is not an AKS environment; pass --env dev, staging or prod (IOTCTL_ENV)." in result.stderr
    result = harness.cli(*harness.deploy_args("dev", "--allow-cidr", "0.0.0.0/0"), ok=False)
    assert "would open the API server and the vault to everyone" in result.stderr


def test_plan_only_plans(harness):
    result = harness.cli(*harness.deploy_args("dev", "--plan"))
    assert "platform: 3 to create" in result.stdout and "create  azurerm_kubernetes_cluster.this" in result.stdout
    assert "note: the plan of aks/environment needs the platform's outputs" in result.stdout
    assert all(cmd != "apply" for _, cmd in harness.terraform.commands())
    harness.cli(*harness.deploy_args("dev", "--yes"))
    data = json.loads(harness.cli(*harness.deploy_args("dev", "--plan", "--json")).stdout)
    assert data["platform"]["counts"]["create"] == 0 and data["environment_plan"]["changes"] == []


def test_a_missing_image_stops_before_the_wait_and_says_how_to_push(harness):
    harness.cloud.acr.images.discard(("iots6-migrate", "0.1.0"))
    result = harness.cli(*harness.deploy_args("dev", "--yes"), ok=False)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: image `{ACR_HOST}/iots6-migrate:0.1.0` is not in the registry; build and push it:")
    assert "docker build -f services/Dockerfile --target migrate" in last
    assert harness.cluster.polls == 0, "no waiting on a sync that cannot pull its image"


def test_a_federated_credential_with_the_wrong_issuer_is_named_before_waiting(harness, cloud):
    from tests.aks.conftest import terraform_config

    config = terraform_config(cloud)
    config["environment:dev"]["outputs"]["federated_credential"]["issuer"] = ISSUER.rstrip("/")
    harness.terraform.configure(config)
    result = harness.cli(*harness.deploy_args("dev", "--yes"), ok=False)
    assert result.exit_code == 1
    assert "error: the workload identity chain is broken at federated credential issuer:" in result.stderr
    assert "(they differ only by the trailing `/`)" in result.stderr
    assert harness.cluster.polls == 0


def test_a_rollout_stuck_on_aadsts70021_names_the_fix(harness):
    harness.cluster.script = [for_env(load_status("aadsts70021"), "dev")]
    result = harness.cli(*harness.deploy_args("dev", "--yes"), ok=False)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: environment `dev` is not ready after 60 s: SecretStore iots6-dev/iots6-keyvault")
    assert "system:serviceaccount:iots6-dev:iots6-secrets" in last


def test_prod_without_promoted_digests_stops_before_waiting(harness, cloud):
    from tests.aks.conftest import terraform_config

    harness.terraform.configure(terraform_config(cloud, "prod"))
    result = harness.cli(*harness.deploy_args("prod", "--yes"), ok=False)
    assert "values-prod.yaml pins no digest for `ingest`; promote the digests staging ran" in result.stderr
    assert "postgres-admin-password" not in cloud.vault.secrets, "Terraform writes prod's admin password"
    assert harness.cluster.polls == 0


@pytest.fixture
def promoted(tmp_path):
    """A checkout whose values-prod.yaml carries the digests a promotion PR sets (the harness runs the CLI there)."""
    shutil.copytree(REPO / "infra", tmp_path / "infra", symlinks=True)
    values = tmp_path / "infra/helm/iots6/values-prod.yaml"
    text = values.read_text()
    for digit in "123":
        text = text.replace('digest: ""', f'digest: "sha256:{digit * 64}"', 1)
    values.write_text(text)
    return tmp_path


def test_prod_is_synced_by_hand_after_the_operator_says_yes_on_a_terminal(harness, cloud, promoted, monkeypatch):
    from iotctl.cli import common, deploy_aks
    from tests.aks.conftest import SUBSCRIPTION, terraform_config

    harness.terraform.configure(terraform_config(cloud, "prod"))
    cloud.arm.assignments["9d8c7b6a-5f4e-3d2c-1b0a-998877665544"] = [
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-iots6-prod-weu", "Key Vault Secrets User")
    ]
    for repo, digit in (("iots6-ingest", "1"), ("iots6-config-server", "2"), ("iots6-migrate", "3")):
        cloud.acr.images.add((repo, "sha256:" + digit * 64))
    harness.cluster.put(for_env(load_status("syncing"), "prod")[0])  # Argo CD generated the Application
    harness.cluster.script = [[], for_env(load_status("healthy"), "prod") + lb_status("prod")]
    monkeypatch.setattr(deploy_aks, "is_terminal", lambda _stream: True)  # stdin and stderr are a terminal
    monkeypatch.setattr(common, "is_terminal", lambda _stream: True)
    harness.env["COLUMNS"] = "160"  # a terminal this wide (the live table is fitted to the terminal's width)
    result = harness.cli(*harness.deploy_args("prod"), input="y\ny\ny\n")
    assert "Apply the plan of aks/platform (3 to create)? [y/N]" in result.stderr
    assert "prod syncs by hand: sync Application `iots6-prod` to `main` now? [y/N]" in result.stderr
    sync = next(o for o in harness.cluster.applied if o["kind"] == "Application")
    assert sync["operation"]["sync"] == {"syncStrategy": {"hook": {}}}
    assert sync["operation"]["initiatedBy"] == {"username": "iotctl"}
    elements = _appset(harness.cluster)["spec"]["generators"][0]["list"]["elements"]
    assert elements[0]["autoSync"] is False and elements[0]["postgresHost"].startswith("psql-iots6-prod")
    assert "• rollout: waiting up to 60 s for iots6-prod" in result.stderr, "a terminal gets the live view"
    assert "Application argocd/iots6-prod" in result.stderr and "\x1b[" in result.stderr
    declined = harness.cli(*harness.deploy_args("prod"), input="n\n", ok=False)
    assert declined.exit_code == 1
    assert "`iots6-prod` was not synced (declined); sync it with `argocd app sync iots6-prod`" in declined.stderr


def test_status_and_check(harness):
    harness.cli(*harness.deploy_args("dev", "--yes"))
    status = json.loads(harness.cli("deploy", "aks", "--env", "dev", "--status", "--json").stdout)
    assert status["application"]["sync"] == "Synced" and status["application"]["last_sync"] == "2026-11-28T07:59:51Z"
    assert status["terraform"]["platform"]["kubernetes_cluster_id"] == CLUSTER_ID
    assert status["terraform"]["environment"]["postgres_admin_password_probe"] is None, "sensitive stays hidden"
    assert [i["reference"] for i in status["images"]][0] == f"{ACR_HOST}/iots6-ingest:0.1.0"
    text = harness.cli("deploy", "aks", "--env", "dev", "--status").stdout
    assert "application: Synced/Healthy at 5b1f0c2e" in text and "postgres_admin_password_probe = (sensitive)" in text

    check = harness.cli("deploy", "aks", "--env", "dev", "--check")
    assert "environment dev: all checks pass" in check.stdout
    harness.cloud.acr.images.clear()
    failing = harness.cli("deploy", "aks", "--env", "dev", "--check", ok=False)
    assert failing.exit_code == 1 and f"image {ACR_HOST}/iots6-ingest:0.1.0: missing" in failing.stdout


def test_destroy_names_what_goes_and_wants_the_name_typed(harness):
    harness.cli(*harness.deploy_args("dev", "--yes"))
    wrong = harness.cli("deploy", "aks", "--env", "dev", "--destroy", "--yes", "--confirm-destroy", "prod", ok=False)
    assert wrong.exit_code == 1 and "the name typed did not match; nothing changed" in wrong.stderr
    assert "  - namespace iots6-dev and everything in it" in wrong.stderr
    assert "  - azurerm_key_vault.this (delete)" in wrong.stderr
    assert load(harness.state, "dev").kind == "aks"
    no_terminal = harness.cli("deploy", "aks", "--env", "dev", "--destroy", "--yes", ok=False)
    assert "pass --confirm-destroy with the environment's name" in no_terminal.stderr
    done = harness.cli("deploy", "aks", "--env", "dev", "--destroy", "--confirm-destroy", "dev", "--json")
    assert json.loads(done.stdout)["terraform"]["counts"]["delete"] == 4
    assert ("v1", "Namespace", "", "iots6-dev") in harness.cluster.deleted
    assert ("argoproj.io/v1alpha1", "ApplicationSet", "argocd", "iots6") in harness.cluster.deleted, "last env gone"
    assert not (harness.state / "environments" / "dev.toml").exists()
