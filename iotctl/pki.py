"""A small certificate authority for the platform's TLS endpoints.

Every environment that exposes the broker (8883) or HTTPS (the config server, Grafana) gets its own CA, generated
by iotctl and kept with the environment's other credentials; ``iotctl device flash`` puts the CA certificate (never
its key) on the board, which then verifies the broker and the config server by it.

Keys are ECDSA P-256: the Pico W's mbedTLS (MicroPython >= 1.23) verifies them quickly, and so do OpenSSL
(Mosquitto, nginx) and Python. Private keys are written 0600 before a byte of them is written; certificates 0644.

Every function is idempotent where that is what a deploy needs: ``ensure_ca`` and ``issue_server_cert`` return
what is already there when it is still good (same CA, same names, more than ``renew_days`` left) and only write new
files otherwise, so re-running a deploy changes nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from iotctl.errors import InvalidInput
from iotctl.secretfiles import write_secret

CA_NAME = "ca"
DEFAULT_CA_DAYS = 3650
# Browsers and Apple platforms refuse TLS server certificates valid for more than 825 days.
DEFAULT_CERT_DAYS = 825
DEFAULT_RENEW_DAYS = 30


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_pair(directory: Path, name: str, cert, key) -> CertPair:
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = write_secret(directory / f"{name}.key", key_pem.decode())
    cert_path = directory / f"{name}.crt"
    tmp = cert_path.with_name(f".{cert_path.name}.tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.chmod(0o644)
    tmp.replace(cert_path)
    return CertPair(cert=cert_path, key=key_path)


def _load_cert(path: Path):
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"certificate `{path}` cannot be read ({exc}); remove it to have it issued again.") from None


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InvalidInput(f"private key `{path}` cannot be read ({reason}); restore it or remove the pair.") from None


def _not_after(cert) -> dt.datetime:
    return cert.not_valid_after_utc


def ensure_ca(directory: Path, common_name: str = "iots6 CA", days: int = DEFAULT_CA_DAYS) -> CertPair:
    """The CA in ``directory`` (``ca.crt``/``ca.key``), created when missing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    pair = CertPair(directory / f"{CA_NAME}.crt", directory / f"{CA_NAME}.key")
    if pair.cert.exists() and pair.key.exists():
        cert, key = _load_cert(pair.cert), _load_key(pair.key)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise InvalidInput(f"CA `{pair.cert}` does not match `{pair.key}`; restore the pair from your backup.")
        return pair
    if pair.cert.exists() or pair.key.exists():
        present = pair.cert if pair.cert.exists() else pair.key
        raise InvalidInput(f"CA half-present: `{present}` exists without its pair; restore both or remove it.")
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write_pair(directory, CA_NAME, cert, key)


def _san(dns_names: Sequence[str], ip_addresses: Sequence[str]):
    from cryptography import x509

    entries: list = [x509.DNSName(name) for name in dns_names]
    for raw in ip_addresses:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(raw)))
        except ValueError:
            raise InvalidInput(f"`{raw}` is not an IP address; pass it as a DNS name instead.") from None
    return entries


def _issue(
    ca: CertPair,
    directory: Path,
    name: str,
    common_name: str,
    san: list,
    usage_oid,
    days: int,
) -> CertPair:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    ca_cert, ca_key = _load_cert(ca.cert), _load_key(ca.key)
    key = _new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), _not_after(ca_cert)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage_oid]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return _write_pair(Path(directory), name, cert, key)


def _still_good(pair: CertPair, ca: CertPair, san: list | None, renew_days: int) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    if not (pair.cert.exists() and pair.key.exists()):
        return False
    cert, ca_cert = _load_cert(pair.cert), _load_cert(ca.cert)
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):  # signed by another CA (e.g. the CA was replaced)
        return False
    if _not_after(cert) - _now() < dt.timedelta(days=renew_days):
        return False
    if san is not None:
        try:
            present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return not san
        if set(present) != set(san):
            return False
    return _load_key(pair.key).public_key().public_numbers() == cert.public_key().public_numbers()


def issue_server_cert(
    ca: CertPair,
    directory: Path,
    name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = DEFAULT_CERT_DAYS,
    renew_days: int = DEFAULT_RENEW_DAYS,
) -> CertPair:
    """A TLS server certificate ``<name>.crt``/``<name>.key`` for these names, reused while still good."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if not dns_names and not ip_addresses:
        raise InvalidInput(f"server certificate `{name}` needs at least one DNS name or IP address; pass one.")
    san = _san(dns_names, ip_addresses)
    pair = CertPair(Path(directory) / f"{name}.crt", Path(directory) / f"{name}.key")
    if _still_good(pair, ca, san, renew_days):
        return pair
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    return _issue(ca, directory, name, common_name, san, ExtendedKeyUsageOID.SERVER_AUTH, days)


def issue_client_cert(
    ca: CertPair,
    directory: Path,
    name: str,
    common_name: str,
    days: int = DEFAULT_CERT_DAYS,
    renew_days: int = DEFAULT_RENEW_DAYS,
) -> CertPair:
    """A TLS client certificate whose subject CN is ``common_name``, reused while still good."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    pair = CertPair(Path(directory) / f"{name}.crt", Path(directory) / f"{name}.key")
    if _still_good(pair, ca, None, renew_days) and describe(pair.cert)["subject"] == common_name:
        return pair
    return _issue(ca, directory, name, common_name, [], ExtendedKeyUsageOID.CLIENT_AUTH, days)


def describe(cert_path: Path) -> dict:
    """What a status view shows of a certificate: subject CN, names, expiry, SHA-256 fingerprint (no key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    cert = _load_cert(cert_path)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        names = [str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cn[0].value if cn else "",
        "names": names,
        "not_after": _not_after(cert).isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
    }
