"""iotctl.pki: certificates that real TLS stacks accept (Python's ssl, i.e. OpenSSL), reuse, and key file modes."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from iotctl import pki
from iotctl.errors import InvalidInput


def _handshake(ca: pki.CertPair, server: pki.CertPair, hostname: str, client: pki.CertPair | None = None) -> str:
    """Run a real TLS handshake over a socketpair: server with ``server``, client verifying by ``ca``."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(server.cert, server.key)
    if client is not None:
        server_ctx.load_verify_locations(ca.cert)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        client_ctx.load_cert_chain(client.cert, client.key)
    a, b = socket.socketpair()
    peer: dict = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                peer["cert"] = s.getpeercert()
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            peer["error"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=hostname) as c:
            data = c.recv(2)
    finally:
        t.join(5)
    assert "error" not in peer, peer
    if client is not None:
        assert dict(x[0] for x in peer["cert"]["subject"])["commonName"] == "svc.ingest"
    return data.decode()


def test_ca_server_and_client_certs_pass_a_real_handshake(tmp_path):
    ca = pki.ensure_ca(tmp_path / "pki")
    server = pki.issue_server_cert(
        ca, tmp_path / "pki", "broker", dns_names=["mqtt.example.test"], ip_addresses=["127.0.0.1"]
    )
    client = pki.issue_client_cert(ca, tmp_path / "pki", "ingest", common_name="svc.ingest")
    assert _handshake(ca, server, "mqtt.example.test") == "ok"
    assert _handshake(ca, server, "127.0.0.1", client=client) == "ok"
    for pair in (ca, server, client):
        assert pair.key.stat().st_mode & 0o777 == 0o600
        assert pair.cert.stat().st_mode & 0o777 == 0o644


def test_a_name_the_certificate_does_not_carry_is_refused(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    server = pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["mqtt.example.test"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca, server, "other.example.test")


def test_reissue_only_when_needed(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    assert pki.ensure_ca(tmp_path) == ca
    ca_bytes = ca.cert.read_bytes()
    first = pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["a.test"])
    before = first.cert.read_bytes()
    assert pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["a.test"]).cert.read_bytes() == before
    # A new name, or a certificate close to expiry, is issued again; the CA itself never changes.
    assert pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["a.test", "b.test"]).cert.read_bytes() != before
    again = pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["a.test", "b.test"]).cert.read_bytes()
    renewed = pki.issue_server_cert(ca, tmp_path, "broker", dns_names=["a.test", "b.test"], renew_days=10_000)
    assert renewed.cert.read_bytes() != again
    assert pki.describe(renewed.cert)["names"] == ["a.test", "b.test"]
    assert ca.cert.read_bytes() == ca_bytes


def test_a_certificate_from_a_replaced_ca_is_issued_again(tmp_path):
    old_ca = pki.ensure_ca(tmp_path / "old")
    server = pki.issue_server_cert(old_ca, tmp_path / "certs", "broker", dns_names=["a.test"])
    server = pki.CertPair(server.cert.rename(tmp_path / "old.crt"), server.key.rename(tmp_path / "old.key"))
    (tmp_path / "certs" / "broker.crt").write_bytes(server.cert.read_bytes())
    (tmp_path / "certs" / "broker.key").write_bytes(server.key.read_bytes())
    new_ca = pki.ensure_ca(tmp_path / "new")
    reissued = pki.issue_server_cert(new_ca, tmp_path / "certs", "broker", dns_names=["a.test"])
    # The old certificate does not verify against the new CA; the reissued one does.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(new_ca, server, "a.test")
    assert _handshake(new_ca, reissued, "a.test") == "ok"


def test_bad_input_is_one_clear_error(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    with pytest.raises(InvalidInput, match="needs at least one DNS name"):
        pki.issue_server_cert(ca, tmp_path, "broker")
    with pytest.raises(InvalidInput, match="is not an IP address"):
        pki.issue_server_cert(ca, tmp_path, "broker", ip_addresses=["not-an-ip"])
    ca.key.unlink()
    with pytest.raises(InvalidInput, match="half-present"):
        pki.ensure_ca(tmp_path)
