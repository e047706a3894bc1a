"""iotctl.deploy's runner wrapper, bundle and secrets, with real ansible-runner/ansible-playbook on small playbooks.

The playbooks here run against this machine with the `local` connection and only write into a temp dir; the
platform's own playbook is exercised by test_converge.py against a booted Debian.
"""

from __future__ import annotations

import io
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from iotctl import pki
from iotctl.deploy import ansible as deploy_ansible
from iotctl.deploy.bundle import Platform, _deterministic_tar
from iotctl.deploy.secrets import PASSWORDS, ensure_secrets
from iotctl.errors import InvalidInput, MissingDependency, NotFound, exit_code_for
from iotctl.stack.procs import free_port

LOCAL = {"iots6": {"hosts": {"box": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}


def _project(tmp_path: Path, tasks: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    (project / "site.yml").write_text(
        f"---\n- name: Test play\n  hosts: iots6\n  gather_facts: false\n  tasks:\n{tasks}"
    )
    return project


def test_run_playbook_counts_changes_and_an_unchanged_rerun(tmp_path):
    target = tmp_path / "out.txt"
    project = _project(
        tmp_path,
        f"""    - name: Write a file
      ansible.builtin.copy:
        dest: {target}
        content: hello
        mode: "0600"
    - name: Write secrets
      ansible.builtin.copy:
        dest: {target}.{{{{ item }}}}
        content: s3cr3t
        mode: "0600"
      loop: [one, two]
      no_log: true
""",
    )
    events: list[deploy_ansible.TaskEvent] = []
    first = deploy_ansible.run_playbook(LOCAL, project=project, on_event=events.append)
    assert first.succeeded and first.changed == 2 and first.hosts["box"].ok == 2
    assert target.read_text() == "hello"
    # A no_log loop's results are censored, and its change is still reported.
    assert [(e.host, e.task, e.status) for e in events] == [
        ("box", "Write a file", "changed"),
        ("box", "Write secrets", "changed"),
    ]
    second = deploy_ansible.run_playbook(LOCAL, project=project)
    assert second.changed == 0 and second.as_dict()["hosts"]["box"]["changed"] == 0


def test_a_failed_task_raises_with_the_host_the_task_and_the_message(tmp_path):
    project = _project(
        tmp_path,
        """    - name: Refuse to go on
      ansible.builtin.fail:
        msg: the disk is full
""",
    )
    with pytest.raises(deploy_ansible.PlaybookFailed) as caught:
        deploy_ansible.run_playbook(LOCAL, project=project)
    assert "`box`" in str(caught.value) and "`Refuse to go on`" in str(caught.value)
    assert "the disk is full" in str(caught.value)
    assert exit_code_for(caught.value) == 1
    assert caught.value.result.hosts["box"].failed == 1


def test_a_playbook_ansible_cannot_parse_names_the_error(tmp_path):
    project = _project(tmp_path, "    - name: Broken\n      ansible.builtin.debug: msg: a: b\n")
    with pytest.raises(deploy_ansible.PlaybookFailed, match="stopped before running a task"):
        deploy_ansible.run_playbook(LOCAL, project=project)


def test_an_unreachable_host_raises_host_unreachable(tmp_path):
    project = _project(tmp_path, "    - name: Ping\n      ansible.builtin.ping:\n")
    port = free_port()  # nothing listens there
    inventory = {
        "iots6": {
            "hosts": {
                "gone": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": port,
                    "ansible_connection": "ssh",
                    "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no",
                }
            }
        }
    }
    with pytest.raises(deploy_ansible.HostUnreachable, match="`gone` is unreachable") as caught:
        deploy_ansible.run_playbook(inventory, project=project)
    assert exit_code_for(caught.value) == 4


def test_missing_inventory_file_and_playbook_are_clear_errors(tmp_path):
    project = _project(tmp_path, "    - name: Ping\n      ansible.builtin.ping:\n")
    with pytest.raises(InvalidInput, match="Inventory `.*nope.yml` does not exist"):
        deploy_ansible.run_playbook(tmp_path / "nope.yml", project=project)
    with pytest.raises(NotFound, match="other.yml"):
        deploy_ansible.run_playbook(LOCAL, project=project, playbook="other.yml")


def test_missing_ansible_playbook_is_a_missing_dependency(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependency, match="`ansible-playbook` not found on PATH"):
        deploy_ansible.run_playbook(
            LOCAL, project=_project(tmp_path, "    - name: Ping\n      ansible.builtin.ping:\n")
        )


def test_the_platform_playbook_is_found_in_the_source_tree():
    assert (deploy_ansible.playbook_dir() / "site.yml").is_file()


def test_platform_keys_and_the_manylinux_tags_pip_is_given():
    platform = Platform("3.11", "aarch64")
    assert platform.key == "cp311-aarch64"
    tags = platform.pip_platforms()
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert not any("2_29" in t for t in tags)  # nothing newer than the glibc floor
    assert "manylinux1_x86_64" in Platform("3.12", "x86_64").pip_platforms()
    with pytest.raises(InvalidInput, match="`armv7l`"):
        Platform("3.11", "armv7l")
    with pytest.raises(InvalidInput, match="`3`"):
        Platform("3", "x86_64")


def test_the_bundle_tar_is_byte_for_byte_reproducible(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    one = _deterministic_tar([wheel], {"requirements.txt": b"demo==1.0\n"})
    wheel.touch()  # a new mtime changes nothing
    two = _deterministic_tar([wheel], {"requirements.txt": b"demo==1.0\n"})
    assert one == two
    with tarfile.open(fileobj=io.BytesIO(one)) as tar:
        assert [(m.name, m.mtime, m.uid, m.mode) for m in tar.getmembers()] == [
            ("demo-1.0-py3-none-any.whl", 0, 0, 0o644),
            ("requirements.txt", 0, 0, 0o644),
        ]


def test_ensure_secrets_creates_private_files_once_and_certificates_for_the_host(tmp_path):
    directory = tmp_path / "env"
    paths = ensure_secrets(directory, dns_names=["iot.example.org"], ip_addresses=["203.0.113.7"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in (*PASSWORDS, "tls-ca-crt", "tls-broker-crt", "tls-broker-key", "tls-config-crt", "tls-config-key"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
        assert paths[name] == directory / name
    assert stat.S_IMODE((directory / "pki" / "ca.key").stat().st_mode) == 0o600
    before = {name: (directory / name).read_text() for name in PASSWORDS}
    assert len(set(before.values())) == len(PASSWORDS)
    again = ensure_secrets(directory, dns_names=["iot.example.org"], ip_addresses=["203.0.113.7"])
    assert again == paths
    assert {name: (directory / name).read_text() for name in PASSWORDS} == before
    names = pki.describe(paths["tls-broker-crt"])["names"]
    assert "iot.example.org" in names and "203.0.113.7" in names


def test_grafana_datasource_is_the_repository_file_with_a_file_password(tmp_path):
    """Grafana cannot be installed here (its apt repository is unreachable); its datasource template can be
    rendered by Ansible for real: the repository's file, its password moved to the service's credential."""
    import yaml

    role = deploy_ansible.playbook_dir() / "roles" / "iots6_grafana"
    grafana = deploy_ansible.playbook_dir().parent / "grafana"
    out = tmp_path / "timescaledb.yaml"
    project = _project(
        tmp_path,
        f"""    - name: Render the datasource
      ansible.builtin.template:
        src: {role}/templates/datasource.yaml.j2
        dest: {out}
        mode: "0600"
      vars:
        iots6_grafana_datasource_source: {grafana}/provisioning/datasources/timescaledb.yaml
        iots6_grafana_datasource_override:
          secureJsonData:
            password: "$__file{{/run/credentials/grafana-server.service/db-password}}"
""",
    )
    deploy_ansible.run_playbook(LOCAL, project=project)
    rendered = yaml.safe_load(out.read_text())
    original = yaml.safe_load((grafana / "provisioning/datasources/timescaledb.yaml").read_text())
    (source,), (result,) = original["datasources"], rendered["datasources"]
    assert result["secureJsonData"] == {"password": "$__file{/run/credentials/grafana-server.service/db-password}"}
    assert {k: v for k, v in result.items() if k != "secureJsonData"} == {
        k: v for k, v in source.items() if k != "secureJsonData"
    }
    assert result["uid"] == "iots6-timescaledb"


def test_the_broker_role_grants_exactly_what_iotctl_grants():
    """The Ansible defaults and the initial state file hold the same roles, ACLs and default access as
    iotctl.broker.dynsec, which the local stacks, `device provision --env` and the Helm chart use."""
    import importlib.util

    import yaml

    from iotctl.broker import dynsec

    role = deploy_ansible.playbook_dir() / "roles" / "iots6_mosquitto"
    defaults = yaml.safe_load(
        (role / "defaults" / "main.yml").read_text().replace("{{ iots6_mosquitto_topic_base }}", "iots6")
    )
    ansible_roles = {
        r["name"]: sorted((a["acltype"], a["topic"], a.get("allow", True)) for a in r["acls"])
        for r in defaults["iots6_mosquitto_roles"]
    }
    expected = {
        name: sorted((a["acltype"], a["topic"], a["allow"]) for a in acls)
        for name, acls in dynsec.platform_roles("iots6").items()
        if name != dynsec.ADMIN_ROLE
    }
    assert ansible_roles == expected
    assert {c["username"]: c["roles"] for c in defaults["iots6_mosquitto_clients"]} == {
        name: [name] for name in expected
    }
    spec = importlib.util.spec_from_file_location("iots6_dynsec", role / "module_utils" / "iots6_dynsec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = module.initial_config("admin", "pw")
    assert state["defaultACLAccess"] == dynsec.DEFAULT_ACL_ACCESS
    (admin_role,) = state["roles"]
    assert admin_role["rolename"] == dynsec.ADMIN_ROLE
    assert sorted(map(str, admin_role["acls"])) == sorted(map(str, dynsec.admin_acls()))
    (admin,) = state["clients"]
    assert dynsec.password_matches(state, "admin", "pw") and not dynsec.password_matches(state, "admin", "no")
    assert admin["roles"] == [{"rolename": dynsec.ADMIN_ROLE}]
