"""iotctl.secrets.vault against FakeKeyVault through the real azure-keyvault-secrets and azure-identity.

What this shows: the SDK calls, the workload-identity token exchange, idempotent seeding, listing without values,
rotation, and the one-line errors for a refusing or unreachable vault. What it cannot show: that a real vault, a real
federated credential or real RBAC role assignments are right (only a real subscription shows that).
"""

from __future__ import annotations

import json
import logging

import pytest
from cryptography import x509

from iotctl.errors import AuthRefused, InvalidInput, Unreachable
from iotctl.secrets import catalog
from iotctl.secrets.vault import KeyVault, TlsNames, list_secrets, rotate, seed

TLS = TlsNames(broker=["mqtt.dev.example.test", "20.1.2.3"], config=["config.dev.example.test"])


def test_seed_writes_every_missing_secret_once_through_workload_identity(fake_vault, keyvault):
    first = seed(keyvault, tls=TLS)
    ours = {s.name for s in catalog.CATALOG if s.kind is not catalog.Kind.TERRAFORM}
    assert sorted(first.created) == sorted(ours) and set(fake_vault.secrets) == ours
    assert "Terraform" in first.skipped["postgres-admin-password"]
    again = seed(keyvault, tls=TLS)
    assert again.nothing_to_do and sorted(again.kept) == sorted(first.created)
    assert all(len(v) == 1 for v in fake_vault.secrets.values()), "a re-run must not write new versions"
    # The SDK met the bearer challenge first, then used a token from the federated-credential exchange.
    assert fake_vault.requests[0][2] is False and any(had for _, _, had in fake_vault.requests)
    assert len(set(fake_vault.all_values())) == len(fake_vault.all_values()), "every value is generated anew"
    pw = fake_vault.value("postgres-app-password")
    assert len(pw) >= 32 and fake_vault.secrets["tls-broker-key"][-1].content_type == "application/x-pem-file"


def test_server_certificates_are_signed_by_the_seeded_ca_for_the_given_names(fake_vault, keyvault):
    seed(keyvault, tls=TLS)
    ca = x509.load_pem_x509_certificate(fake_vault.value("tls-ca-crt").encode())
    broker = x509.load_pem_x509_certificate(fake_vault.value("tls-broker-crt").encode())
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["mqtt.dev.example.test", "20.1.2.3"]


def test_without_endpoint_names_tls_is_skipped_and_said_why(fake_vault, keyvault):
    report = seed(keyvault, tls=None)
    assert set(report.skipped) == {*catalog.TLS_NAMES, "postgres-admin-password"}
    assert "deploy aks" in report.skipped["tls-broker-crt"]
    assert not set(catalog.TLS_NAMES) & set(fake_vault.secrets)


def test_existing_secrets_are_kept_unless_named(fake_vault, keyvault):
    fake_vault.put("postgres-app-password", "set-by-a-human-before-iotctl")
    report = seed(keyvault, tls=TLS)
    assert "postgres-app-password" in report.kept
    assert fake_vault.value("postgres-app-password") == "set-by-a-human-before-iotctl"
    seed(keyvault, tls=TLS, overwrite=["postgres-app-password"])
    assert fake_vault.value("postgres-app-password") != "set-by-a-human-before-iotctl"
    with pytest.raises(InvalidInput, match="`nope` is not one of the environment's secrets"):
        seed(keyvault, overwrite=["nope"])


def test_list_shows_versions_and_dates_never_values(fake_vault, keyvault):
    fake_vault.put("someone-elses-secret", "unrelated-value-123")
    seed(keyvault, tls=TLS)
    rows = list_secrets(keyvault)
    by_name = {r.name: r for r in rows}
    assert by_name["config-admin-token"].version == fake_vault.secrets["config-admin-token"][-1].version
    assert by_name["config-admin-token"].managed_by_iotctl and by_name["config-admin-token"].in_catalog
    assert not by_name["someone-elses-secret"].in_catalog and not by_name["someone-elses-secret"].managed_by_iotctl
    dumped = json.dumps([r.as_dict() for r in rows])
    for value in fake_vault.all_values():
        assert value not in dumped
    # Listing never asked the vault for a value: only properties endpoints were called.
    gets = [path for method, path, _ in fake_vault.requests if method == "GET"]
    assert all(p == "/secrets" or p.endswith("/versions") for p in gets), gets


def test_rotate_writes_a_new_version_and_says_what_picks_it_up(fake_vault, keyvault):
    seed(keyvault, tls=TLS)
    old = fake_vault.value("mqtt-ingest-password")
    report = rotate(keyvault, "mqtt-ingest-password")
    assert fake_vault.value("mqtt-ingest-password") != old and len(fake_vault.secrets["mqtt-ingest-password"]) == 2
    assert report.version == fake_vault.secrets["mqtt-ingest-password"][-1].version and "broker" in report.picked_up_by
    ca_before, key_before = fake_vault.value("tls-ca-crt"), fake_vault.value("tls-broker-key")
    tls_report = rotate(keyvault, "tls-broker-crt", tls=TLS)
    assert set(tls_report.rotated) == {"tls-broker-crt", "tls-broker-key"}
    assert fake_vault.value("tls-broker-key") != key_before and fake_vault.value("tls-ca-crt") == ca_before
    ca = x509.load_pem_x509_certificate(ca_before.encode())
    x509.load_pem_x509_certificate(fake_vault.value("tls-broker-crt").encode()).verify_directly_issued_by(ca)
    with pytest.raises(InvalidInput, match="not rotated in place"):
        rotate(keyvault, "tls-ca-crt", tls=TLS)
    with pytest.raises(InvalidInput, match="rotated by Terraform"):
        rotate(keyvault, "postgres-admin-password")


def test_a_vault_that_refuses_is_one_sentence_naming_the_role(fake_vault, keyvault):
    fake_vault.forbid = True
    with pytest.raises(AuthRefused, match=r"refused this identity \(Forbidden\); grant it the `Key Vault Secrets"):
        seed(keyvault)


def test_a_federated_credential_that_does_not_match_names_aadsts70021(fake_vault):
    fake_vault.token_file.write_text("a-token-from-another-service-account")
    with pytest.raises(AuthRefused, match="AADSTS70021"):
        list_secrets(KeyVault(fake_vault.url, verify_challenge_resource=False))


def test_an_unreachable_vault_is_one_sentence(fake_vault):
    url = fake_vault.url
    fake_vault.stop()
    with pytest.raises(Unreachable, match=r"cannot be reached .*; check the vault URL"):
        list_secrets(KeyVault(url, verify_challenge_resource=False, retry_total=0))


def test_no_value_reaches_the_logs(fake_vault, keyvault, caplog):
    caplog.set_level(logging.DEBUG)
    seed(keyvault, tls=TLS)
    rotate(keyvault, "config-admin-token")
    list_secrets(keyvault)
    assert caplog.text, "the SDKs log at DEBUG; the check must have something to search"
    for value in fake_vault.all_values():
        for line in value.splitlines():
            if len(line) > 8 and "-----" not in line:
                assert line not in caplog.text


def test_a_vault_url_must_be_https(fake_vault):
    with pytest.raises(InvalidInput, match="must start with https://"):
        KeyVault("http://127.0.0.1:1", verify_challenge_resource=False)
