"""The chart's ExternalSecrets and `iotctl secrets seed` name the same Key Vault secrets (iotctl/secrets/catalog.py)."""

from __future__ import annotations

import pytest

from iotctl.secrets import catalog

from .conftest import ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_key_vault_name_the_chart_reads_is_in_the_catalog(rendered, env):
    keys = {
        item["remoteRef"]["key"]
        for doc in rendered[env]
        if doc["kind"] == "ExternalSecret"
        for item in doc["spec"].get("data", [])
    }
    assert keys, "the chart renders ExternalSecrets"
    assert keys <= set(catalog.BY_NAME), f"not in iotctl/secrets/catalog.py: {sorted(keys - set(catalog.BY_NAME))}"
    # What no pod reads: the CA's key (iotctl only) and, in an environment without an in-cluster PostgreSQL, nothing
    # else; the catalog holds no secret nobody uses.
    unused = set(catalog.BY_NAME) - keys
    assert unused <= {"tls-ca-key", "postgres-admin-password"}, sorted(unused)
