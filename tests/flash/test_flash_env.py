"""`iotctl device flash --env prod`: a device provisioned in a TLS environment gets `broker_tls` and the
environment's CA on the board (/ca.json, read by firmware/lib/iots6/app.py), against the FakeBoard's real
MicroPython."""

from __future__ import annotations

import json
import ssl
from dataclasses import asdict, replace

from iotctl import pki
from iotctl.environments import register_environment
from iotctl.secretfiles import write_secret

from .test_flash import board_files, run


def test_flash_in_a_tls_environment_puts_its_ca_on_the_board(fakeboard, site):
    ca = pki.ensure_ca(site["tmp"] / "prod-ca", common_name="prod CA")
    env = register_environment(
        site["state"],
        "prod",
        "vm",
        broker_host="broker.prod.example",
        broker_port=8883,
        config_url="https://config.prod.example",
        secrets={"tls-ca-crt": ca.cert},
    )
    creds = replace(
        site["creds"],
        mqtt_host="broker.prod.example",
        mqtt_port=8883,
        mqtt_tls=True,
        mqtt_ca_file=str(env.ca_file),
        environment="prod",
    )
    write_secret(env.devices_dir / "bench-1.json", json.dumps(asdict(creds)))
    board = fakeboard()

    result = run(
        site["env"],
        "device",
        "flash",
        "--env",
        "prod",
        "--port",
        board.port,
        "--device-id",
        "bench-1",
        "--no-wait",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "/ca.json" in summary["copy"]
    files = board_files(board.port)
    device = json.loads(files["/device.json"])
    assert device["broker_tls"] is True and device["broker_host"] == "broker.prod.example"
    assert device["broker_port"] == 8883
    on_board = json.loads(files["/ca.json"])
    assert bytes.fromhex(on_board["cadata_hex"]) == ssl.PEM_cert_to_DER_cert(ca.cert.read_text())
    assert "BEGIN PRIVATE KEY" not in files["/ca.json"].decode()

    again = run(
        site["env"],
        "device",
        "flash",
        "--env",
        "prod",
        "--port",
        board.port,
        "--device-id",
        "bench-1",
        "--no-wait",
        "--json",
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["copy"] == []
    # the local environment's copy of bench-1 (plaintext) is not what was flashed
    assert json.loads(site["creds_file"].read_text())["mqtt_tls"] is False
