"""`iotctl device flash --env prod`: a device provisioned in a TLS environment gets `broker_tls` and the
environment's CA on the board (/ca.crt, PEM, read by firmware/lib/iots6/net.py), against the FakeBoard's real
MicroPython."""

from __future__ import annotations

import json
import ssl
from dataclasses import asdict, replace

from iotctl import pki
from iotctl.environments import register_environment
from iotctl.secretfiles import write_secret

from .test_flash import board_files, raw, run


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
    with raw(board.port) as t:  # a board flashed by iotctl 0.1 holds the CA in its old form
        t.fs_writefile("/ca.json", b'{"cadata_hex": "00"}\n')

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
    assert "/ca.crt" in summary["copy"] and "/ca.json" in summary["remove"]
    files = board_files(board.port)
    device = json.loads(files["/device.json"])
    assert device["broker_tls"] is True and device["broker_host"] == "broker.prod.example"
    assert device["broker_port"] == 8883
    on_board = files["/ca.crt"].decode()
    assert ssl.PEM_cert_to_DER_cert(on_board) == ssl.PEM_cert_to_DER_cert(ca.cert.read_text())
    assert "PRIVATE KEY" not in on_board
    assert "/ca.json" not in files, "the old form of the CA is removed"

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
