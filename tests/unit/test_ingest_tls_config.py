"""INGEST_MQTT_TLS_*: what turns TLS on, and a one-sentence error naming the variable for every bad combination or
file (the service exits 2 with it, before connecting anywhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from iotctl import pki
from iotctl.secretfiles import write_secret
from iots6_platform.ingest.config import ConfigError, IngestConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ingest-tls")
    ca = pki.ensure_ca(directory / "ca")
    client = pki.issue_client_cert(ca, directory, "ingest", "svc.ingest")
    other = pki.issue_client_cert(pki.ensure_ca(directory / "other-ca"), directory, "other", "svc.ingest")
    key = serialization.load_pem_private_key(client.key.read_bytes(), password=None)
    encrypted = write_secret(
        directory / "encrypted.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ).decode(),
    )
    return {"ca": ca, "client": client, "other": other, "encrypted": encrypted, "dir": directory}


def _env(tmp_path, **tls) -> dict[str, str]:
    env = {
        "INGEST_MQTT_PASSWORD_FILE": str(write_secret(tmp_path / "pw", "pw")),
        "INGEST_DATABASE_URL": "postgresql://iots6@127.0.0.1:5432/iots6",
    }
    env.update({f"INGEST_MQTT_TLS_{name.upper()}_FILE": str(value) for name, value in tls.items()})
    return env


def test_without_tls_variables_the_reader_speaks_plain_tcp_on_1883(tmp_path):
    config = IngestConfig.from_env(_env(tmp_path))
    assert (config.mqtt_tls_ca_file, config.mqtt_port) == ("", 1883)
    assert "TLS" not in repr(config)


def test_a_ca_file_turns_tls_on_and_the_default_port_to_8883(tmp_path, certs):
    config = IngestConfig.from_env(_env(tmp_path, ca=certs["ca"].cert))
    assert config.mqtt_tls_ca_file == str(certs["ca"].cert) and config.mqtt_port == 8883
    assert " TLS" in repr(config) and str(certs["ca"].key) not in repr(config)
    env = _env(tmp_path, ca=certs["ca"].cert, cert=certs["client"].cert, key=certs["client"].key)
    env["INGEST_MQTT_PORT"] = "18883"
    config = IngestConfig.from_env(env)
    assert (config.mqtt_tls_cert_file, config.mqtt_tls_key_file, config.mqtt_port) == (
        str(certs["client"].cert),
        str(certs["client"].key),
        18883,
    )


@pytest.mark.parametrize(
    "files, words",
    [
        ({"cert": "client.cert"}, "INGEST_MQTT_TLS_CERT_FILE and INGEST_MQTT_TLS_KEY_FILE go together"),
        ({"ca": "ca.cert", "key": "client.key"}, "go together"),
        ({"cert": "client.cert", "key": "client.key"}, "set without INGEST_MQTT_TLS_CA_FILE"),
        ({"ca": "missing"}, "INGEST_MQTT_TLS_CA_FILE=`{MISSING}` cannot be loaded (no such file or directory)"),
        ({"ca": "client.key"}, "INGEST_MQTT_TLS_CA_FILE=`{CLIENT_KEY}` cannot be loaded (no certificate or crl found)"),
        ({"ca": "ca.cert", "cert": "client.cert", "key": "other.key"}, "(key values mismatch)"),
        ({"ca": "ca.cert", "cert": "client.cert", "key": "encrypted"}, "(the private key is encrypted)"),
        ({"ca": "ca.cert", "cert": "missing", "key": "client.key"}, "INGEST_MQTT_TLS_CERT_FILE=`{MISSING}` with"),
    ],
)
def test_bad_tls_settings_are_one_sentence_naming_the_variable(tmp_path, certs, files, words):
    def path(ref: str) -> str:
        if ref == "missing":
            return str(tmp_path / "nowhere.pem")
        if ref == "encrypted":
            return str(certs["encrypted"])
        name, part = ref.split(".")
        return str(getattr(certs[name], part))

    resolved = {name: path(ref) for name, ref in files.items()}
    with pytest.raises(ConfigError) as info:
        IngestConfig.from_env(_env(tmp_path, **resolved))
    message = str(info.value)
    expected = words.format(MISSING=path("missing"), CLIENT_KEY=path("client.key"))
    assert expected.lower() in message.lower(), message
    assert "\n" not in message and message.endswith(".")


def test_the_service_exits_2_with_that_sentence(tmp_path):
    env = _env(tmp_path, ca=tmp_path / "nowhere.pem")
    env["PATH"] = "/usr/bin"
    proc = subprocess.run(
        [sys.executable, "-m", "iots6_platform.ingest"], env=env, cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "INGEST_MQTT_TLS_CA_FILE=" in proc.stderr
    assert "Traceback" not in proc.stderr
