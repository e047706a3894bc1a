"""Static assertions on the root modules (vm, aks/platform, aks/environment).

The azurerm provider cannot be downloaded here, so the roots cannot be validated or planned; their logic lives
in the provider-free modules (tested with `terraform test`). What is left is read from the HCL itself, with
checkov's parser (see conftest.parse_hcl), and asserted here: tags everywhere, a closed network, AKS identity
settings, Key Vault RBAC/purge protection, the federated credential's subject/issuer, the PostgreSQL password
path. References are checked as the expressions they are (e.g. `${module.naming.federated_subject}`); the
modules' own tests prove what those expressions evaluate to.
"""

from __future__ import annotations

import re

import pytest

from .conftest import ROOTS, TF_ROOT, Block, blocks, scalar, sub

ALL = {name: blocks(path) for name, path in ROOTS.items()}

# azurerm resource types that carry no `tags` argument (sub-resources, associations, role assignments, …).
NOT_TAGGABLE = {
    "azurerm_subnet",
    "azurerm_network_security_rule",
    "azurerm_subnet_network_security_group_association",
    "azurerm_virtual_machine_data_disk_attachment",
    "azurerm_role_assignment",
    "azurerm_federated_identity_credential",
    "azurerm_monitor_data_collection_rule_association",
    "azurerm_postgresql_flexible_server_configuration",
    "azurerm_postgresql_flexible_server_database",
}


def resources(root: str, rtype: str | None = None) -> list[Block]:
    return [b for b in ALL[root] if b.kind == "resource" and (rtype is None or b.type == rtype)]


def one(root: str, rtype: str, name: str = "this") -> dict:
    found = [b for b in resources(root, rtype) if b.name == name]
    assert len(found) == 1, f"{root}: expected one {rtype}.{name}"
    return found[0].body


def attr(body: dict, *path: str):
    """Follow nested blocks/attributes (first block at each level) and unwrap the value."""
    value = body
    for key in path:
        value = value[key]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0]
    return scalar(value)


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_taggable_resource_is_tagged(root):
    for block in resources(root):
        if block.type in NOT_TAGGABLE:
            assert "tags" not in block.body, f"{block.address}: {block.type} takes no tags (update NOT_TAGGABLE)"
            continue
        tags = scalar(block.body.get("tags", ""))
        assert isinstance(tags, str) and "local.tags" in tags, f"{root}: {block.address} is not tagged with local.tags"


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_nested_node_pools_are_tagged(root):
    for block in resources(root, "azurerm_kubernetes_cluster"):
        assert "local.tags" in attr(block.body, "default_node_pool", "tags")


def _allow_rules(root: str):
    """(address, rule body) of every inline NSG rule that allows traffic."""
    for block in resources(root, "azurerm_network_security_group"):
        for rule in sub(block.body, "security_rule"):
            if scalar(rule["access"]) == "Allow":
                yield block.address, rule


PUBLIC = {"*", "0.0.0.0/0", "::/0", "Internet", "Any"}


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_no_nsg_rule_allows_the_internet_or_forbidden_ports(root):
    for address, rule in _allow_rules(root):
        sources = scalar(rule.get("source_address_prefix", "")) or scalar(rule.get("source_address_prefixes", ""))
        assert sources not in PUBLIC and "${" in str(sources), f"{address}/{scalar(rule['name'])}: source {sources}"
        port = str(scalar(rule["destination_port_range"]))
        assert port in {"443", "5432"}, f"{address}: allow rule for port {port}"
        if port == "5432":  # PostgreSQL only from the cluster's nodes (or the standby inside its own subnet)
            assert "aks_nodes" in sources or sources == "${each.value}", f"{address}: 5432 from {sources}"
    for block in resources(root, "azurerm_network_security_rule"):
        # Standalone rules (the VM's) come only from modules/nsg_rules, whose terraform test proves them:
        # 8883/443 to the given CIDRs, 22 from the operator only, deny at 4096.
        assert scalar(block.body["for_each"]) == "${local.nsg_rules}"
        assert scalar(block.body["source_address_prefixes"]) == "${each.value.source_address_prefixes}"


def test_vm_nsg_rules_come_from_the_module():
    locals_text = (TF_ROOT / "vm" / "locals.tf").read_text()
    assert "module.nsg_rules.rules" in locals_text
    main = [b for b in ALL["vm"] if b.kind == "module" and b.name == "nsg_rules"][0].body
    assert scalar(main["ssh_source_cidrs"]) == "${var.ssh_source_cidrs}"
    # No literal wide-open CIDR anywhere in the VM root's resources.
    for block in resources("vm"):
        assert "0.0.0.0/0" not in str(block.body), block.address


def test_vm_is_ssh_key_only_with_identity_and_boot_diagnostics():
    vm = one("vm", "azurerm_linux_virtual_machine")
    assert attr(vm, "disable_password_authentication") is True
    assert "admin_password" not in vm
    assert "admin_ssh_key" in vm
    assert attr(vm, "identity", "type") == "SystemAssigned"
    assert "boot_diagnostics" in vm
    assert attr(vm, "source_image_reference", "offer") == "debian-12"
    assert attr(vm, "allow_extension_operations") is False
    disk = one("vm", "azurerm_managed_disk", "data")
    assert attr(disk, "public_network_access_enabled") is False
    pip = one("vm", "azurerm_public_ip")
    assert attr(pip, "domain_name_label") == "${local.names.dns_label}"


def test_aks_identity_and_network():
    aks = one("aks/platform", "azurerm_kubernetes_cluster")
    assert attr(aks, "oidc_issuer_enabled") is True
    assert attr(aks, "workload_identity_enabled") is True
    assert attr(aks, "local_account_disabled") is True
    assert attr(aks, "azure_active_directory_role_based_access_control", "azure_rbac_enabled") is True
    assert attr(aks, "network_profile", "network_plugin") == "azure"
    assert attr(aks, "network_profile", "network_plugin_mode") == "overlay"
    assert attr(aks, "network_profile", "network_policy") == "cilium"
    assert attr(aks, "default_node_pool", "only_critical_addons_enabled") is True
    assert attr(aks, "oms_agent", "msi_auth_for_monitoring_enabled") is True
    assert "monitor_metrics" in aks
    # The chart's Ingress class webapprouting.kubernetes.azure.com is the application routing add-on's.
    assert attr(aks, "web_app_routing", "dns_zone_ids") == "${var.app_routing_dns_zone_ids}"
    assert attr(aks, "kubernetes_version") == "${var.kubernetes_version}"
    assert attr(aks, "api_server_access_profile", "authorized_ip_ranges") == "${var.api_server_authorized_ip_ranges}"
    user = one("aks/platform", "azurerm_kubernetes_cluster_node_pool", "user")
    assert attr(user, "mode") == "User"


def test_acr_pull_for_the_kubelet_identity():
    acr = one("aks/platform", "azurerm_container_registry")
    assert attr(acr, "admin_enabled") is False
    pull = one("aks/platform", "azurerm_role_assignment", "kubelet_acr_pull")
    assert attr(pull, "role_definition_name") == "AcrPull"
    assert attr(pull, "scope") == "${azurerm_container_registry.this.id}"
    assert attr(pull, "principal_id") == "${azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id}"


def test_managed_prometheus_and_container_insights_are_wired_to_the_cluster():
    associations = resources("aks/platform", "azurerm_monitor_data_collection_rule_association")
    targets = {b.name: attr(b.body, "target_resource_id") for b in associations}
    assert set(targets) == {"container_insights", "prometheus", "prometheus_endpoint"}
    assert set(targets.values()) == {"${azurerm_kubernetes_cluster.this.id}"}
    endpoint = one("aks/platform", "azurerm_monitor_data_collection_rule_association", "prometheus_endpoint")
    assert attr(endpoint, "name") == "configurationAccessEndpoint"
    dcr = one("aks/platform", "azurerm_monitor_data_collection_rule", "prometheus")
    assert attr(dcr, "destinations", "monitor_account", "monitor_account_id") == "${azurerm_monitor_workspace.this.id}"
    groups = one("aks/platform", "azurerm_monitor_alert_prometheus_rule_group")
    assert scalar(groups["for_each"]) == "${module.prometheus_alerts.rule_groups}"
    rule = groups["dynamic"][0]["rule"]["content"][0]
    assert scalar(rule["expression"]) == "${rule.value.expression}" and scalar(rule["for_"]) == "${rule.value.for}"
    dashboard = one("aks/platform", "azurerm_portal_dashboard")
    assert attr(dashboard, "dashboard_properties") == "${module.portal_dashboard.properties}"
    grafana = one("aks/platform", "azurerm_dashboard_grafana")
    assert attr(grafana, "count") == "${var.managed_grafana_enabled ? 1 : 0}"
    managed_default = [b for b in ALL["aks/platform"] if b.kind == "variable" and b.name == "managed_grafana_enabled"]
    assert scalar(managed_default[0].body["default"]) is False


def test_key_vault_rbac_private_and_purge_protected_in_prod():
    vault = one("aks/environment", "azurerm_key_vault")
    assert attr(vault, "rbac_authorization_enabled") is True
    assert "access_policy" not in vault
    assert attr(vault, "network_acls", "default_action") == "Deny"
    assert attr(vault, "purge_protection_enabled") == "${local.key_vault.purge_protection_enabled}"
    prod = (TF_ROOT / "aks" / "environment" / "environments" / "prod.tfvars").read_text()
    assert re.search(r"purge_protection_enabled\s*=\s*true", prod)
    endpoint = one("aks/environment", "azurerm_private_endpoint", "key_vault")
    assert attr(endpoint, "private_service_connection", "subresource_names") == "vault"


def test_federated_credential_matches_the_namespace_and_service_account_scheme():
    fic = one("aks/environment", "azurerm_federated_identity_credential", "secrets")
    # modules/naming's test proves this is system:serviceaccount:iots6-<env>:iots6-secrets (docs/decisions.md §7).
    assert attr(fic, "subject") == "${module.naming.federated_subject}"
    assert attr(fic, "issuer") == "${var.platform.oidc_issuer_url}"
    assert attr(fic, "audience") == "api://AzureADTokenExchange"
    assert attr(fic, "parent_id") == "${azurerm_user_assigned_identity.secrets.id}"
    role = one("aks/environment", "azurerm_role_assignment", "secrets_user")
    assert attr(role, "role_definition_name") == "Key Vault Secrets User"
    assert attr(role, "scope") == "${azurerm_key_vault.this.id}"  # its own vault only
    assert attr(role, "principal_id") == "${azurerm_user_assigned_identity.secrets.principal_id}"


def test_grafana_reads_managed_prometheus_with_the_environment_identity():
    """The chart's Grafana (service account iots6-grafana, annotated with the same client id) queries the Azure
    Monitor workspace: a second federated credential on the same identity, and Monitoring Data Reader there."""
    fic = one("aks/environment", "azurerm_federated_identity_credential", "grafana")
    # modules/naming's test proves this is system:serviceaccount:iots6-<env>:iots6-grafana.
    assert attr(fic, "subject") == "${module.naming.grafana_federated_subject}"
    assert attr(fic, "issuer") == "${var.platform.oidc_issuer_url}"
    assert attr(fic, "audience") == "api://AzureADTokenExchange"
    assert attr(fic, "parent_id") == "${azurerm_user_assigned_identity.secrets.id}"
    assert attr(fic, "name") != attr(one("aks/environment", "azurerm_federated_identity_credential", "secrets"), "name")
    reader = one("aks/environment", "azurerm_role_assignment", "monitoring_data_reader")
    assert attr(reader, "role_definition_name") == "Monitoring Data Reader"
    assert attr(reader, "scope") == "${var.platform.monitor_workspace_id}"
    assert attr(reader, "principal_id") == "${azurerm_user_assigned_identity.secrets.principal_id}"


def test_postgres_is_private_with_timescaledb_and_a_write_only_password():
    server = one("aks/environment", "azurerm_postgresql_flexible_server")
    assert attr(server, "public_network_access_enabled") is False
    assert attr(server, "delegated_subnet_id") == "${var.platform.postgres_subnet_id}"
    assert "administrator_password" not in server, "the password must be write-only (administrator_password_wo)"
    assert attr(server, "administrator_password_wo") == "${ephemeral.random_password.postgres_admin[0].result}"
    extensions = one("aks/environment", "azurerm_postgresql_flexible_server_configuration", "extensions")
    assert attr(extensions, "name") == "azure.extensions" and "TIMESCALEDB" in attr(extensions, "value")
    preload = one("aks/environment", "azurerm_postgresql_flexible_server_configuration", "shared_preload_libraries")
    assert "timescaledb" in attr(preload, "value")
    secret = one("aks/environment", "azurerm_key_vault_secret", "postgres_admin_password")
    assert "value" not in secret and attr(secret, "value_wo") == attr(server, "administrator_password_wo")
    assert attr(secret, "value_wo_version") == attr(server, "administrator_password_wo_version")
    ephemeral = [b for b in ALL["aks/environment"] if b.kind == "ephemeral"]
    assert [b.address for b in ephemeral] == ["random_password.postgres_admin"]


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_no_secret_values_in_the_code(root):
    for block in resources(root):
        keys = ["administrator_password", "admin_password", "password", "client_secret"]
        if block.type == "azurerm_key_vault_secret":
            keys.append("value")  # only value_wo (write-only) may carry a secret
        for key in keys:
            assert key not in block.body, f"{root}: {block.address} sets {key} (secrets stay out of code and state)"
    for path in (ROOTS[root]).rglob("*.tfvars*"):
        assert not re.search(r"(?i)password\s*=", path.read_text()), f"{path} holds a password"


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_providers_only_in_roots_with_pinned_versions(root):
    providers = [b for b in ALL[root] if b.kind == "provider"]
    assert providers and all(b.file.name == "providers.tf" for b in providers)
    text = (ROOTS[root] / "terraform.tf").read_text()
    assert re.search(r'source\s*=\s*"hashicorp/azurerm"\s*\n\s*version\s*=\s*">= 4\.42, < 5\.0"', text)
    assert "required_version" in text
