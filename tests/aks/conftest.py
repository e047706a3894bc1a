"""Fixtures for the AKS-side commands: a FakeKeyVault (see fake_azure.py) reached through the real Azure SDKs.

The workload identity path is the one exercised: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and
AZURE_AUTHORITY_HOST point ``DefaultAzureCredential`` at the fake's token endpoint, and REQUESTS_CA_BUNDLE makes the
SDKs trust the fake's test certificate. Every other credential source is pointed at loopback or made unavailable, so
no request can leave the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iotctl import pki
from iotctl.stack.procs import free_port
from tests.aks.fake_azure import FakeKeyVault


@pytest.fixture
def fake_vault(tmp_path, monkeypatch) -> Iterator[FakeKeyVault]:
    ca = pki.ensure_ca(tmp_path / "pki", common_name="FakeKeyVault test CA")
    cert = pki.issue_server_cert(ca, tmp_path / "pki", "vault", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    vault = FakeKeyVault().start(cert.cert, cert.key)
    token_file = tmp_path / "sa-token"
    token_file.write_text(vault.federated_token)
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", vault.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", vault.client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", vault.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.cert))
    # Managed identity would probe 169.254.169.254 when workload identity fails: keep it on a closed loopback port.
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{free_port()}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "test")
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `az`, `azd` or `pwsh`: those credentials are unavailable
    vault.token_file = token_file
    try:
        yield vault
    finally:
        vault.stop()


@pytest.fixture
def keyvault(fake_vault):
    """The library's KeyVault on the fake, with the test-only client options."""
    from iotctl.secrets.vault import KeyVault

    return KeyVault(fake_vault.url, verify_challenge_resource=False)
