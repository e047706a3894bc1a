"""`iotctl secrets seed|list|rotate` through CliRunner, against FakeKeyVault under a real vault host name (the real
azure-keyvault-secrets and azure-identity on the workload identity path, TLS, the bearer challenge and its resource
check). Shows iotctl's side; a real vault's RBAC and network rules are for a real subscription to show."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app
from iotctl.secrets import catalog
from tests.aks.conftest import VAULT_HOST


@pytest.fixture
def run(cloud, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"IOTCTL_STATE_DIR": str(tmp_path / "state"), "IOTCTL_KEYVAULT_URL": cloud.vault_url}

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_seed_then_nothing_to_do(run, cloud):
    first = run("secrets", "seed", "--env", "dev")
    generated = {s.name for s in catalog.CATALOG if s.kind is not catalog.Kind.TLS}
    assert generated <= set(cloud.vault.secrets), "dev's in-cluster database: its admin password is iotctl's too"
    assert "skipped tls-broker-crt: needs the broker's and config server's DNS names" in first.stderr
    again = run("secrets", "seed", "--env", "dev")
    assert again.stderr.strip().splitlines()[-1].startswith("nothing to do: every secret of `dev` is in https://")
    data = json.loads(run("secrets", "seed", "--env", "dev", "--json").stdout)
    assert data["created"] == [] and "postgres-app-password" in data["kept"]
    assert all(len(v) == 1 for v in cloud.vault.secrets.values()), "re-runs wrote no new versions"


def test_staging_leaves_the_database_admin_to_terraform(run, cloud):
    data = json.loads(run("secrets", "seed", "--env", "staging", "--json").stdout)
    assert "postgres-admin-password" not in cloud.vault.secrets
    assert data["skipped"]["postgres-admin-password"] == "written by Terraform when it creates the database server"
    refused = run("secrets", "seed", "--env", "staging", "--overwrite", "postgres-admin-password", ok=False)
    assert refused.exit_code == 6 and "`postgres-admin-password` is never overwritten" in refused.stderr


def test_list_shows_versions_never_values(run, cloud):
    run("secrets", "seed", "--env", "dev")
    text = run("secrets", "list", "--env", "dev")
    data = json.loads(run("secrets", "list", "--env", "dev", "--json").stdout)
    rows = {r["name"]: r for r in data["secrets"]}
    assert rows["mqtt-admin-password"]["version"] == cloud.vault.secrets["mqtt-admin-password"][-1].version
    assert rows["tls-broker-key"]["version"] is None, "not seeded without host names: listed as missing"
    assert "MISSING" in text.stdout and f"environment dev: https://{VAULT_HOST}/" in text.stderr
    for value in cloud.vault.all_values():
        assert value not in text.stdout + text.stderr + json.dumps(data)


def test_rotate_writes_a_version_and_says_what_picks_it_up(run, cloud):
    run("secrets", "seed", "--env", "dev")
    before = cloud.vault.value("mqtt-ingest-password")
    result = run("secrets", "rotate", "mqtt-ingest-password", "--env", "dev")
    assert cloud.vault.value("mqtt-ingest-password") != before
    assert "picked up by: the broker's reconcile Job on the next sync" in result.stderr
    assert "annotate externalsecret --all force-sync" in result.stderr
    data = json.loads(run("secrets", "rotate", "config-admin-token", "--env", "dev", "--json").stdout)
    assert data["version"] == cloud.vault.secrets["config-admin-token"][-1].version
    unknown = run("secrets", "rotate", "nope", "--env", "dev", ok=False)
    assert unknown.exit_code == 6 and "error: `nope` is not one of the environment's secrets" in unknown.stderr


def test_a_refusing_vault_is_one_line_and_exit_5(run, cloud):
    cloud.vault.forbid = True
    result = run("secrets", "list", "--env", "dev", ok=False)
    assert result.exit_code == 5
    assert result.stderr.strip().splitlines() == [
        f"error: Key Vault `https://{VAULT_HOST}` refused this identity (Forbidden); grant it the `Key Vault "
        "Secrets Officer` role on the vault (az role assignment create --role 'Key Vault Secrets Officer' --scope "
        "<vault id>)."
    ]


def test_an_unreachable_vault_is_one_line_and_exit_4(run, cloud, monkeypatch):
    from iotctl.secrets import vault

    monkeypatch.setattr(vault, "CLIENT_OPTIONS", {"retry_total": 0})  # fail at once instead of after 3 retries
    del cloud.names[VAULT_HOST]  # the vault's name no longer resolves (Entra ID still answers)
    result = run("secrets", "seed", "--env", "dev", ok=False)
    assert result.exit_code == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Key Vault `https://{VAULT_HOST}` cannot be reached (")
    assert "Traceback" not in result.output, lines


def test_which_vault(run, tmp_path):
    from typer.testing import CliRunner as Runner

    result = Runner().invoke(
        app, ["secrets", "list", "--env", "staging"], env={"IOTCTL_STATE_DIR": str(tmp_path / "s")}
    )
    assert result.exit_code == 7
    assert "no Key Vault is known for `staging`; deploy it (`iotctl deploy aks --env staging`)" in result.stderr
    local = Runner().invoke(app, ["secrets", "list"], env={"IOTCTL_STATE_DIR": str(tmp_path / "s")})
    assert local.exit_code == 6 and "Pass --env with an AKS environment" in local.stderr
