"""Every broker we deploy saves and limits like the native stack: one definition (iotctl/stack/mosquitto.py).

The durability promise in README/docs/ingest.md (a broker crash loses fewer than AUTOSAVE_INTERVAL acknowledged
readings) and the size limits in docs/contract.md hold only if the VM's and the cluster's Mosquitto carry the same
three lines as the local stacks.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from iotctl.stack import mosquitto
from tests.infra.k8s.conftest import ENVIRONMENTS, render_env

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "autosave_on_changes": str(mosquitto.AUTOSAVE_ON_CHANGES).lower(),
    "autosave_interval": str(mosquitto.AUTOSAVE_INTERVAL),
    "max_packet_size": str(mosquitto.MAX_PACKET_SIZE),
}


def _directives(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in EXPECTED:
            found[parts[0]] = parts[1]
    return found


def test_the_charts_broker_config_matches_the_native_stack():
    for env in ENVIRONMENTS:
        maps = [d for d in render_env(env) if d["kind"] == "ConfigMap" and "mosquitto.conf" in d.get("data", {})]
        assert maps, env
        assert _directives(maps[0]["data"]["mosquitto.conf"]) == EXPECTED, env


def test_the_vm_role_matches_the_native_stack():
    role = ROOT / "infra/ansible/roles/iots6_mosquitto"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    values = {
        "autosave_on_changes": str(defaults["iots6_mosquitto_autosave_on_changes"]).lower(),
        "autosave_interval": str(defaults["iots6_mosquitto_autosave_interval"]),
        "max_packet_size": str(defaults["iots6_mosquitto_max_packet_size"]),
    }
    assert values == EXPECTED
    template = (role / "templates/mosquitto.conf.j2").read_text()
    for key in EXPECTED:
        assert f"\n{key} {{{{ iots6_mosquitto_{key}" in template, key
