"""Seed, list and rotate an environment's secrets in Azure Key Vault.

Talks to the vault with ``azure-keyvault-secrets`` and authenticates with ``azure-identity``'s
``DefaultAzureCredential`` (Azure CLI login, ``AZURE_*`` environment variables, workload identity, managed identity);
iotctl never stores an Azure credential. Values are generated here with a CSPRNG (``secrets``) or by
:mod:`iotctl.pki`, go straight to the vault, and are never returned, logged or put in an error message: the results
of every function carry names, versions and dates only.

Azure's errors become iotctl's typed errors in one place (:func:`_azure_errors`), each one sentence naming the vault
and the fix.
"""

from __future__ import annotations

import contextlib
import secrets as _random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from iotctl import pki
from iotctl.errors import AuthRefused, InvalidInput, MissingDependency, NotFound, Unreachable
from iotctl.secretfiles import write_secret
from iotctl.secrets.catalog import BY_NAME, CATALOG, TLS_NAMES, Kind, SecretSpec

MANAGED_TAG = {"managed-by": "iotctl"}


@dataclass(frozen=True)
class TlsNames:
    """The names the environment's server certificates must carry (from Terraform's outputs or the environment)."""

    broker: Sequence[str]
    config: Sequence[str]


@dataclass(frozen=True)
class SecretInfo:
    name: str
    version: str | None
    content_type: str | None
    updated: datetime | None
    enabled: bool
    managed_by_iotctl: bool
    in_catalog: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "content_type": self.content_type,
            "updated": self.updated.isoformat() if self.updated else None,
            "enabled": self.enabled,
            "managed_by_iotctl": self.managed_by_iotctl,
            "in_catalog": self.in_catalog,
        }


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why

    @property
    def nothing_to_do(self) -> bool:
        return not self.created

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "kept": self.kept, "skipped": self.skipped}


@dataclass(frozen=True)
class RotateReport:
    name: str
    version: str | None
    rotated: tuple[str, ...]
    picked_up_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "rotated": list(self.rotated),
            "picked_up_by": self.picked_up_by,
        }


@contextlib.contextmanager
def _azure_errors(vault_url: str) -> Iterator[None]:
    """The one translation of Azure SDK errors into iotctl's errors (never echoing a request body)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except ClientAuthenticationError as exc:
        first = str(exc.message or exc).strip().splitlines()[0][:300]
        if "AADSTS70021" in str(exc):
            raise AuthRefused(
                f"Microsoft Entra ID refused the workload identity for Key Vault `{vault_url}` (AADSTS70021: no "
                "federated credential matches the token's issuer and subject); check the identity with "
                "`iotctl deploy aks --env ENV --check`."
            ) from None
        raise AuthRefused(
            f"no Azure credential was accepted for Key Vault `{vault_url}` ({first}); run `az login`, or set "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and a secret, certificate or AZURE_FEDERATED_TOKEN_FILE."
        ) from None
    except ResourceNotFoundError:
        raise
    except HttpResponseError as exc:
        if exc.status_code == 403:
            code = getattr(getattr(exc, "error", None), "code", None) or "Forbidden"
            raise AuthRefused(
                f"Key Vault `{vault_url}` refused this identity ({code}); grant it the `Key Vault Secrets Officer` "
                "role on the vault (az role assignment create --role 'Key Vault Secrets Officer' --scope <vault id>)."
            ) from None
        raise Unreachable(
            f"Key Vault `{vault_url}` answered HTTP {exc.status_code} ({getattr(exc, 'reason', '')}); check the vault "
            "URL and that the vault exists."
        ) from None
    except ServiceRequestError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise Unreachable(
            f"Key Vault `{vault_url}` cannot be reached ({reason}); check the vault URL, DNS and your network or VPN."
        ) from None


def default_credential() -> Any:
    """``DefaultAzureCredential`` without the interactive browser: a CLI must not pop up windows in a pipeline."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise MissingDependency(
            "`azure-identity` is not installed; install iotctl with its dependencies (pip install iotctl)."
        ) from None
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


#: ``SecretClient`` options every :class:`KeyVault` gets. Empty in production; a test sets ``retry_total=0`` here
#: to see an unreachable vault fail at once instead of after the SDK's retries.
CLIENT_OPTIONS: dict[str, Any] = {}


class KeyVault:
    """One environment's vault. ``client_options`` go to ``SecretClient`` (tests pass a CA bundle and
    ``verify_challenge_resource=False`` for their local vault; production never needs them)."""

    def __init__(self, vault_url: str, credential: Any = None, **client_options: Any) -> None:
        if not vault_url.startswith("https://"):
            raise InvalidInput(f"Key Vault URL `{vault_url}` must start with https://; use the vault's URI.")
        from azure.keyvault.secrets import SecretClient

        self.url = vault_url.rstrip("/")
        options = {**CLIENT_OPTIONS, **client_options}
        self._client = SecretClient(self.url, credential or default_credential(), **options)

    def read(self, name: str, what: str | None = None) -> str:
        """The current value of ``name``, for the operator's own use (an environment's credentials). It goes to
        the caller only: never logged, never in an error message."""
        try:
            return self._value(name)
        except NotFound:
            raise NotFound(
                f"{what or f'secret `{name}`'} is not in Key Vault `{self.url}` (`{name}`); run `iotctl secrets seed`."
            ) from None

    # -- reads: properties only, except the CA pair that signs new server certificates ---------------------------
    def properties(self) -> dict[str, Any]:
        with _azure_errors(self.url):
            return {p.name: p for p in self._client.list_properties_of_secrets()}

    def current_version(self, name: str) -> Any | None:
        with _azure_errors(self.url):
            versions = [p for p in self._client.list_properties_of_secret_versions(name) if p.enabled]
        versions.sort(key=lambda p: p.updated_on or p.created_on)
        return versions[-1] if versions else None

    def _value(self, name: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with _azure_errors(self.url):
                return self._client.get_secret(name).value or ""
        except ResourceNotFoundError:
            raise NotFound(f"secret `{name}` is not in Key Vault `{self.url}`; run `iotctl secrets seed`.") from None

    def _set(self, name: str, value: str, content_type: str) -> str | None:
        with _azure_errors(self.url):
            return self._client.set_secret(name, value, content_type=content_type, tags=MANAGED_TAG).properties.version


def _generate(spec: SecretSpec) -> str:
    return _random.token_urlsafe(32 if spec.kind is Kind.TOKEN else 24)


def _tls_bundle(vault: KeyVault, names: TlsNames, existing: set[str], renew: Sequence[str] = ()) -> dict[str, str]:
    """PEM values for the TLS secrets missing from the vault (or named in ``renew``), from the vault's CA if it has
    one. Files exist only in a private temporary directory for the duration of this call."""
    wanted = {n for n in TLS_NAMES if n not in existing} | set(renew)
    if not wanted:
        return {}
    with tempfile.TemporaryDirectory(prefix="iotctl-pki-") as tmp:
        work = Path(tmp)
        work.chmod(0o700)
        if {"tls-ca-crt", "tls-ca-key"} <= existing and not ({"tls-ca-crt", "tls-ca-key"} & wanted):
            (work / "ca.crt").write_text(vault._value("tls-ca-crt"))
            write_secret(work / "ca.key", vault._value("tls-ca-key"))
        elif {"tls-ca-crt", "tls-ca-key"} & existing and {"tls-ca-crt", "tls-ca-key"} & wanted:
            raise InvalidInput(
                f"Key Vault `{vault.url}` holds only half of the CA (tls-ca-crt/tls-ca-key); restore the other half, "
                "or delete both to have a new CA made (devices must then be flashed with it)."
            )
        ca = pki.ensure_ca(work)
        broker = pki.issue_server_cert(ca, work, "broker", *_split(names.broker))
        config = pki.issue_server_cert(ca, work, "config", *_split(names.config))
        files = {
            "tls-ca-crt": ca.cert,
            "tls-ca-key": ca.key,
            "tls-broker-crt": broker.cert,
            "tls-broker-key": broker.key,
            "tls-config-crt": config.cert,
            "tls-config-key": config.key,
        }
        return {name: files[name].read_text() for name in TLS_NAMES if name in wanted}


def _split(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    import ipaddress

    dns, ips = [], []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            ips.append(host)
        except ValueError:
            dns.append(host)
    return dns, ips


def seed(
    vault: KeyVault,
    tls: TlsNames | None = None,
    overwrite: Sequence[str] = (),
    in_cluster_database: bool = False,
) -> SeedReport:
    """Write every catalog secret the vault lacks; never overwrite one unless it is named in ``overwrite``.

    ``in_cluster_database``: the environment runs the chart's PostgreSQL (dev) and Terraform creates no server,
    so nobody else writes ``postgres-admin-password`` (the in-cluster superuser's): it is generated here too."""
    unknown = [n for n in overwrite if n not in BY_NAME]
    if unknown:
        raise InvalidInput(f"`{unknown[0]}` is not one of the environment's secrets; see `iotctl secrets list`.")
    fixed = [n for n in overwrite if BY_NAME[n].kind is Kind.TERRAFORM]
    if fixed:
        raise InvalidInput(
            f"`{fixed[0]}` is never overwritten: Terraform sets it together with the server (staging, prod), and "
            "dev's in-cluster database keeps the one it was created with; see `iotctl secrets rotate --help`."
        )
    present = set(vault.properties())
    report = SeedReport()
    existing = present - set(overwrite)
    for spec in CATALOG:
        if spec.kind is Kind.TLS:
            continue
        if spec.kind is Kind.TERRAFORM and not in_cluster_database:
            if spec.name not in present:
                report.skipped[spec.name] = "written by Terraform when it creates the database server"
            else:
                report.kept.append(spec.name)
            continue
        if spec.name in existing:
            report.kept.append(spec.name)
            continue
        vault._set(spec.name, _generate(spec), spec.content_type)
        report.created.append(spec.name)
    tls_missing = [n for n in TLS_NAMES if n not in existing]
    if tls_missing and tls is None:
        for name in tls_missing:
            report.skipped[name] = "needs the broker's and config server's DNS names: run `iotctl deploy aks`"
    elif tls_missing:
        for name, pem in _tls_bundle(vault, tls, existing).items():
            vault._set(name, pem, BY_NAME[name].content_type)
            report.created.append(name)
    report.kept.extend(n for n in TLS_NAMES if n in existing)
    return report


def list_secrets(vault: KeyVault) -> list[SecretInfo]:
    """Every secret in the vault with its current version and last update; values are never fetched."""
    props = vault.properties()
    rows = []
    for name in sorted(set(props) | set(BY_NAME)):
        p = props.get(name)
        current = vault.current_version(name) if p is not None else None
        rows.append(
            SecretInfo(
                name=name,
                version=current.version if current else None,
                content_type=p.content_type if p else None,
                updated=p.updated_on if p else None,
                enabled=bool(p.enabled) if p else False,
                managed_by_iotctl=bool(p and (p.tags or {}).get("managed-by") == "iotctl"),
                in_catalog=name in BY_NAME,
            )
        )
    return rows


def rotate(vault: KeyVault, name: str, tls: TlsNames | None = None) -> RotateReport:
    """Write a new version of ``name`` (a server certificate is rotated with its key, signed by the same CA)."""
    spec = BY_NAME.get(name)
    if spec is None:
        raise InvalidInput(f"`{name}` is not one of the environment's secrets; see `iotctl secrets list`.")
    if spec.kind is Kind.TERRAFORM:
        raise InvalidInput(
            f"`{name}` is rotated by Terraform (it sets the server and the vault together); bump "
            "`postgres_admin_password_version` in the environment's tfvars and run `iotctl deploy aks --env ENV`."
        )
    if name in ("tls-ca-crt", "tls-ca-key"):
        raise InvalidInput(
            "`tls-ca-*` is not rotated in place: every device trusts this CA; follow docs/deploy-aks.md "
            "(rotate the CA) to roll a new one out with the devices' next flash."
        )
    if spec.kind is Kind.TLS:
        if tls is None:
            raise InvalidInput(
                f"rotating `{name}` needs the endpoint names; run it through `iotctl secrets rotate --env`."
            )
        pair = ("tls-broker-crt", "tls-broker-key") if "broker" in name else ("tls-config-crt", "tls-config-key")
        existing = set(vault.properties())
        version = None
        for pair_name, pem in _tls_bundle(vault, tls, existing, renew=pair).items():
            v = vault._set(pair_name, pem, spec.content_type)
            version = v if pair_name == name else version
        return RotateReport(name, version, pair, spec.picked_up_by)
    version = vault._set(name, _generate(spec), spec.content_type)
    return RotateReport(name, version, (name,), spec.picked_up_by)
