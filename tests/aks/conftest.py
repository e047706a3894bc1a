"""Fixtures for the AKS-side commands: a FakeKeyVault (see fake_azure.py) reached through the real Azure SDKs.

The workload identity path is the one exercised: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and
AZURE_AUTHORITY_HOST point ``DefaultAzureCredential`` at the fake's token endpoint, and REQUESTS_CA_BUNDLE makes the
SDKs trust the fake's test certificate. Every other credential source is pointed at loopback or made unavailable, so
no request can leave the machine.

``cloud`` goes further, for the whole ``deploy aks`` flow: Azure's real host names (a vault under
``vault.azure.net``, ``management.azure.com``, ``<registry>.azurecr.io``, the address echo service) resolve, in
this process only, to fakes on 127.0.0.1 whose certificate names them (``azure_names``: a stand-in for DNS, nothing
else: TLS, HTTP and the SDKs run unchanged, including Key Vault's challenge-resource check). Any other name fails
to resolve, so nothing can leave the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from iotctl import pki
from iotctl.stack.procs import free_port
from tests.aks.fake_azure import FakeContainerRegistry, FakeKeyVault, FakeResourceManager, _JsonHandler, serve_https


def _workload_identity(monkeypatch, vault: FakeKeyVault, tmp_path: Path, ca_cert: Path) -> Path:
    token_file = tmp_path / "sa-token"
    token_file.write_text(vault.federated_token)
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", vault.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", vault.client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", vault.address)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_cert))
    # Managed identity would probe 169.254.169.254 when workload identity fails: keep it on a closed loopback port.
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{free_port()}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "test")
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `az`, `azd` or `pwsh`: those credentials are unavailable
    return token_file


@pytest.fixture
def fake_vault(tmp_path, monkeypatch) -> Iterator[FakeKeyVault]:
    ca = pki.ensure_ca(tmp_path / "pki", common_name="FakeKeyVault test CA")
    cert = pki.issue_server_cert(ca, tmp_path / "pki", "vault", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    vault = FakeKeyVault().start(cert.cert, cert.key)
    vault.token_file = _workload_identity(monkeypatch, vault, tmp_path, ca.cert)
    try:
        yield vault
    finally:
        vault.stop()


@pytest.fixture
def keyvault(fake_vault):
    """The library's KeyVault on the fake, with the test-only client options."""
    from iotctl.secrets.vault import KeyVault

    return KeyVault(fake_vault.url, verify_challenge_resource=False)


# ------------------------------------------------------------------------------------------------ the whole cloud
VAULT_HOST = "kv-iots6-dev-weu-1a2b3c.vault.azure.net"
ACR_HOST = "iots6acr.azurecr.io"
ARM_HOST = "management.azure.com"
ECHO_HOST = "api.ipify.org"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
PLATFORM_RG = "rg-iots6-platform-weu"
CLUSTER_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{PLATFORM_RG}/providers/Microsoft.ContainerService/"
    "managedClusters/aks-iots6-platform-weu"
)
ISSUER = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/1a2b3c4d/"
OPERATOR_ADDRESS = "20.61.7.19"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Cloud:
    vault: FakeKeyVault
    arm: FakeResourceManager
    acr: FakeContainerRegistry
    ca_cert: Path
    names: dict[str, int]
    echo_requests: list[str] = field(default_factory=list)

    @property
    def vault_url(self) -> str:
        return f"https://{VAULT_HOST}/"


def azure_names(monkeypatch, names: dict[str, int]) -> None:
    """In this process, resolve each name to 127.0.0.1 on its fake's port; refuse every other non-loopback name."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in names:
            return real("127.0.0.1", names[name], *args, **kwargs)
        if name in ("localhost", "::1") or (name or "").startswith("127."):
            return real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: not resolvable in tests (tests/aks/conftest.py)")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def cloud(tmp_path, monkeypatch) -> Iterator[Cloud]:
    ca = pki.ensure_ca(tmp_path / "pki", common_name="Fake Azure test CA")
    cert = pki.issue_server_cert(
        ca,
        tmp_path / "pki",
        "azure",
        dns_names=[VAULT_HOST, ACR_HOST, ARM_HOST, ECHO_HOST, "localhost"],
        ip_addresses=["127.0.0.1"],
    )
    # One tenant for every test: azure-keyvault-secrets caches a vault's challenge (tenant included) per host name.
    vault = FakeKeyVault(tenant_id=TENANT).start(cert.cert, cert.key, public_url=f"https://{VAULT_HOST}")
    arm = FakeResourceManager(vault).start(cert.cert, cert.key)
    acr = FakeContainerRegistry(vault, login_server=ACR_HOST).start(cert.cert, cert.key)
    vault.scopes.add("6dae42f8-4368-4678-94ff-3960e28e3630/.default")  # the AKS server application
    echo_requests: list[str] = []

    class Echo(_JsonHandler):
        def do_GET(self) -> None:  # noqa: N802
            echo_requests.append(self.path)
            body = OPERATOR_ADDRESS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    echo, _thread = serve_https(Echo, cert.cert, cert.key, "FakeAddressEcho")
    names = {
        VAULT_HOST: int(vault.address.rsplit(":", 1)[1]),
        ARM_HOST: arm.port,
        ACR_HOST: acr.port,
        ECHO_HOST: echo.server_address[1],
    }
    vault.token_file = _workload_identity(monkeypatch, vault, tmp_path, ca.cert)
    monkeypatch.delenv("IOTCTL_AZURE_ARM_URL", raising=False)
    azure_names(monkeypatch, names)
    try:
        yield Cloud(vault, arm, acr, ca.cert, names, echo_requests)
    finally:
        for server in (vault, arm, acr):
            server.stop()
        echo.shutdown()
        echo.server_close()


# ------------------------------------------------------------------------------------------------ deploy harness
def terraform_config(cloud: Cloud, env: str = "dev", **env_overrides: Any) -> dict[str, Any]:
    """What FakeTerraform answers for the two roots, in the shapes of infra/terraform/aks/*/outputs.tf."""
    platform_inputs = {
        e: {
            "location": "westeurope",
            "resource_group_name": PLATFORM_RG,
            "kubernetes_cluster_name": "aks-iots6-platform-weu",
            "oidc_issuer_url": ISSUER,
            "virtual_network_id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{PLATFORM_RG}/providers/"
            "Microsoft.Network/virtualNetworks/vnet-iots6-platform-weu",
            "private_endpoints_subnet_id": "/subscriptions/…/subnets/snet-private-endpoints",
            "key_vault_private_dns_zone_id": "/subscriptions/…/privateDnsZones/privatelink.vaultcore.azure.net",
            "postgres_subnet_id": f"/subscriptions/…/subnets/snet-{e}-postgres",
            "postgres_subnet_cidr": f"10.40.{8 + i}.0/24",
            "monitor_workspace_id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{PLATFORM_RG}/providers/"
            "Microsoft.Monitor/accounts/amw-iots6-platform-weu",
        }
        for i, e in enumerate(("dev", "staging", "prod"))
    }
    env_outputs = {
        "environment": env,
        "resource_group_name": f"rg-iots6-{env}-weu",
        "tenant_id": cloud.vault.tenant_id,
        "key_vault_name": VAULT_HOST.split(".")[0],
        "key_vault_uri": cloud.vault_url,
        "kubernetes_namespace": f"iots6-{env}",
        "kubernetes_service_account": "iots6-secrets",
        "workload_identity_client_id": "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "workload_identity_principal_id": "9d8c7b6a-5f4e-3d2c-1b0a-998877665544",
        "federated_credential": {
            "issuer": ISSUER,
            "subject": f"system:serviceaccount:iots6-{env}:iots6-secrets",
            "audience": ["api://AzureADTokenExchange"],
        },
        "secret_store": {"name": "iots6-keyvault", "vault_url": cloud.vault_url},
        "postgres_subnet_cidr": None if env == "dev" else platform_inputs[env]["postgres_subnet_cidr"],
        "postgres": None
        if env == "dev"
        else {
            "host": f"psql-iots6-{env}-weu.postgres.database.azure.com",
            "port": 5432,
            "database": "iots6",
            "admin_login": "iots6admin",
            "admin_password_secret": "postgres-admin-password",
            "sslmode": "require",
        },
        **env_overrides,
    }
    return {
        "platform": {
            "changes": [
                "azurerm_resource_group.this",
                "azurerm_kubernetes_cluster.this",
                "azurerm_container_registry.this",
            ],
            "outputs": {
                "resource_group_name": PLATFORM_RG,
                "location": "westeurope",
                "kubernetes_cluster_name": "aks-iots6-platform-weu",
                "kubernetes_cluster_id": CLUSTER_ID,
                "kubernetes_api_server_url": "https://aks-iots6-platform-weu-1a2b3c.hcp.westeurope.azmk8s.io",
                "oidc_issuer_url": ISSUER,
                "container_registry_name": "iots6acr",
                "container_registry_login_server": ACR_HOST,
                "prometheus_query_endpoint": "https://amw-iots6-platform-weu-1a2b.westeurope.prometheus.monitor.azure.com",
                "environment_inputs": platform_inputs,
                "managed_grafana_endpoint": None,
            },
        },
        f"environment:{env}": {
            "changes": [
                "azurerm_resource_group.this",
                "azurerm_key_vault.this",
                "azurerm_user_assigned_identity.secrets",
                "azurerm_federated_identity_credential.secrets",
            ]
            + ([] if env == "dev" else ["azurerm_postgresql_flexible_server.this[0]"]),
            "outputs": {**env_outputs, "postgres_admin_password_probe": {"sensitive": True, "value": "tf-sensitive-x"}},
        },
    }


@pytest.fixture(autouse=True)
def _helm_homes(tmp_path, monkeypatch) -> None:
    """Helm's repository cache and config go to the test's temp dir, never to ~/.cache/helm."""
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm" / name.lower()))


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory):
    from tests.aks.chart_repo import start_chart_repository

    repo = start_chart_repository(tmp_path_factory.mktemp("charts"))
    yield repo
    repo.stop()


@dataclass
class Harness:
    """`iotctl deploy aks` and `iotctl secrets` through CliRunner, against the fakes."""

    cloud: Cloud
    state: Path
    terraform: Any
    cluster: Any
    chart_repo: Any
    env: dict[str, str | None]

    def cli(self, *args: str, ok: bool = True, input: str | None = None):
        from iotctl.cli.main import app

        result = CliRunner().invoke(app, list(args), env=self.env, catch_exceptions=False, input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def deploy_args(self, env: str = "dev", *extra: str) -> list[str]:
        return [
            "deploy",
            "aks",
            "--env",
            env,
            "--location",
            "westeurope",
            "--repo-url",
            "https://github.com/example/iotctl.git",
            "--broker-host",
            f"mqtt.{env}.iots6.example.com",
            "--config-host",
            f"config.{env}.iots6.example.com",
            "--chart-mirror",
            self.chart_repo.url,
            "--timeout",
            "60",
            *extra,
        ]


@pytest.fixture
def harness(cloud, chart_repo, tmp_path, monkeypatch) -> Harness:
    from iotctl.deploy.aks import flow as aks_flow
    from tests.aks.fake_kubernetes import FakeKubernetes, for_env, load
    from tests.aks.fake_terraform import write_fake_terraform

    monkeypatch.chdir(tmp_path)  # no stray ./iotctl.toml; the infra/ of the package's checkout is used
    terraform = write_fake_terraform(tmp_path / "fake-terraform", terraform_config(cloud))
    cluster = FakeKubernetes(controllers=True)
    monkeypatch.setattr(aks_flow, "connect_cluster", lambda _kubeconfig: cluster)  # where the flow looks it up
    monkeypatch.setattr(aks_flow.AksDeployment, "__init__", _fast_polls(aks_flow.AksDeployment.__init__))
    cluster.script = [for_env(load("syncing"), "dev"), [], for_env(load("healthy"), "dev") + lb_status("dev")]
    cloud.arm.clusters[CLUSTER_ID] = {
        "server": "https://aks-iots6-platform-weu-1a2b3c.hcp.westeurope.azmk8s.io:443",
        "ca_data": __import__("base64").b64encode(cloud.ca_cert.read_bytes()).decode(),
    }
    cloud.arm.assignments["9d8c7b6a-5f4e-3d2c-1b0a-998877665544"] = [
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-iots6-dev-weu", "Key Vault Secrets User")
    ]
    for repo in ("iots6-ingest", "iots6-config-server", "iots6-migrate"):
        cloud.acr.images.add((repo, "0.1.0"))
    env = {
        "IOTCTL_STATE_DIR": str(tmp_path / "state"),
        # FakeTerraform is the `terraform` on PATH (the real-Terraform test names its binary with IOTCTL_TERRAFORM).
        "PATH": f"{terraform.directory}:/usr/bin:/bin",
        "IOTCTL_TERRAFORM": None,
    }
    return Harness(cloud, tmp_path / "state", terraform, cluster, chart_repo, env)


def _fast_polls(init):
    """The deployment's waits run on virtual time: a poll advances a clock instead of sleeping."""

    def wrapped(self, *args, **kwargs):
        clock = {"now": 0.0}

        def sleep(seconds: float) -> None:
            clock["now"] += seconds

        kwargs.setdefault("clock", lambda: clock["now"])
        kwargs.setdefault("sleep", sleep)
        init(self, *args, **kwargs)

    return wrapped


def lb_status(env: str) -> list[dict[str, Any]]:
    """The broker's LoadBalancer Service and the config server's Ingress once Azure gave them addresses."""
    ns = f"iots6-{env}"
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "iots6-mosquitto-tls", "namespace": ns},
            "status": {"loadBalancer": {"ingress": [{"ip": "20.103.5.17"}]}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "iots6-config-server", "namespace": ns},
            "status": {"loadBalancer": {"ingress": [{"ip": "20.103.5.18"}]}},
        },
    ]
