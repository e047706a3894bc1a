"""HTTP client of the config server's admin API (stdlib ``urllib``), errors mapped to typed iotctl errors.

Used by ``iotctl config``.  The URL and the admin token come from the active environment
(``iotctl.environments``): for the built-in ``local`` one, ``config_url`` (default: the native stack's
``http://127.0.0.1:<config_port>``) and ``config_admin_token_file`` (default: the stack's
``secrets/admin-token.password``); a registered environment has its own (an ``https`` URL is verified against the
environment's CA).
"""

from __future__ import annotations

import getpass
import json
import re
import ssl
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from iotctl.device_id import validate_device_id
from iotctl.errors import AuthRefused, InvalidInput, NotFound, OperationFailed, Unreachable
from iotctl.settings import Settings
from iots6_platform.core import contract
from iots6_platform.core.devconfig import schema


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "cli"
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", user)[:64] or "cli"


@dataclass
class AdminClient:
    base_url: str
    token: str
    actor: str = ""
    timeout: float = 10.0
    ca_file: Path | None = None
    env: str = ""  # the registered environment, for messages

    @property
    def where(self) -> str:
        return f"`{self.base_url}`" + (f" of environment `{self.env}`" if self.env else "")

    def __repr__(self) -> str:  # never print the token
        return f"AdminClient({self.base_url})"

    def request(self, method: str, path: str, body: Any = None, if_match: int | None = None) -> Any:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "X-Actor": self.actor or _default_actor(),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        req = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        context = None
        if self.base_url.startswith("https:"):
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._error(exc, path) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise Unreachable(
                    f"Config server {self.where} presented a certificate that does not verify "
                    f"({reason.verify_message}) against CA `{self.ca_file or 'system trust store'}`; register the "
                    "CA that signed it."
                ) from None
            fix = (
                f"check that it runs and that `iotctl env show {self.env}` has the right URL"
                if self.env
                else "start it with `iotctl stack up` or fix IOTCTL_CONFIG_URL"
            )
            raise Unreachable(f"Config server {self.where} is not reachable; {fix}.") from None

    def _error(self, exc: urllib.error.HTTPError, path: str) -> Exception:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        if exc.code in (401, 403):
            fix = (
                f"its `config-admin-token` is wrong or expired; re-register environment `{self.env}`"
                if self.env
                else "check IOTCTL_CONFIG_ADMIN_TOKEN_FILE"
            )
            return AuthRefused(f"Config server {self.where} refused the admin token; {fix}.")
        if exc.code == 422:
            return InvalidInput(detail or f"Config server `{self.base_url}` rejected the configuration.")
        if exc.code == 404:
            device = path.split("/")[3] if path.startswith("/v1/devices/") else path
            return NotFound(f"Device `{device}` is not registered; provision it with `iotctl device provision`.")
        if exc.code == 412:
            return OperationFailed("The configuration changed while you edited it; run the command again.")
        if exc.code == 409:
            return InvalidInput(f"Config server `{self.base_url}` refused the request: {detail}.")
        if exc.code in (502, 503, 504):
            # 503 with a JSON detail is the config server's own (its database is down); without one, the proxy's.
            why = detail.rstrip(".") if detail else "the proxy in front of it answered for it"
            return Unreachable(
                f"Config server {self.where} is unavailable (HTTP {exc.code}: {why}); check it and its database, "
                "then run the command again."
            )
        if exc.code == 400:
            return InvalidInput(f"Config server `{self.base_url}` refused the request: {detail}.")
        return OperationFailed(f"Config server `{self.base_url}` answered HTTP {exc.code}; see its log.")

    # -- resources
    @staticmethod
    def _device_path(device_id: str, leaf: str = "") -> str:
        return f"/v1/devices/{quote(validate_device_id(device_id))}" + (f"/{leaf}" if leaf else "")

    # -- the device registry (iots6_platform.core.registry behind the config server)
    def registry_entry(self, device_id: str) -> dict[str, Any] | None:
        """The device's registry row (``GET /v1/devices/{id}``), or None when it was never registered."""
        try:
            return self.request("GET", self._device_path(device_id))
        except NotFound:
            return None

    def register(self, device_id: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Register the device or bring a retired one back (``PUT /v1/devices/{id}``, idempotent); the answer
        carries ``config_token`` when the device had none, else null."""
        body = {} if labels is None else {"labels": labels}
        return self.request("PUT", self._device_path(device_id), body)

    def new_token(self, device_id: str) -> str:
        """A new config token for an active device (``POST /v1/devices/{id}/token``); the old one stops working."""
        return self.request("POST", self._device_path(device_id, "token"))["config_token"]

    def fleet(self) -> list[dict[str, Any]]:
        """The registry's rows of every device (``GET /v1/devices``), shaped as
        ``iots6_platform.core.registry.fleet`` returns them from the database (times as datetimes)."""
        from datetime import datetime

        from iots6_platform.core.registry import FLEET_KEYS, FLEET_TIMES

        rows = []
        for device in self.devices():
            row = {key: device.get(key) for key in FLEET_KEYS}
            for key in FLEET_TIMES:
                row[key] = datetime.fromisoformat(row[key]) if row[key] else None
            rows.append(row)
        return rows

    def retire(self, device_id: str) -> dict[str, Any] | None:
        """Retire the device (``DELETE /v1/devices/{id}``: row kept, token deleted); None when never registered."""
        try:
            return self.request("DELETE", self._device_path(device_id))
        except NotFound:
            return None

    def devices(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/devices")["devices"]

    def get(self, device_id: str | None) -> dict[str, Any]:
        """Fleet defaults (``device_id`` None) or a device's overrides, with ``version`` and ``effective``."""
        if device_id is None:
            return self.request("GET", "/v1/fleet/config")
        return self.request("GET", self._device_path(device_id, "overrides"))

    def write(
        self, device_id: str | None, doc: dict[str, Any], *, patch: bool, if_match: int | None = None
    ) -> dict[str, Any]:
        method = "PATCH" if patch else "PUT"
        path = "/v1/fleet/config" if device_id is None else self._device_path(device_id, "overrides")
        return self.request(method, path, doc, if_match=if_match)

    def history(self, device_id: str | None, limit: int = 50) -> list[dict[str, Any]]:
        path = "/v1/fleet/history" if device_id is None else self._device_path(device_id, "history")
        return self.request("GET", f"{path}?limit={limit}")["history"]


def admin_client(settings: Settings) -> AdminClient:
    """The admin client of the active environment: explicit URL/token file first, else the local stack's."""
    from iotctl.environments import CONFIG_ADMIN, active

    env = active(settings)
    token_file = env.config_token_file()
    if token_file is not None and not Path(token_file).exists():
        fix = (
            "run `iotctl stack up` or set IOTCTL_CONFIG_ADMIN_TOKEN_FILE"
            if env.builtin
            else f"re-register environment `{env.name}` with its token"
        )
        raise NotFound(f"Config server admin token file `{token_file}` does not exist; {fix}.")
    return AdminClient(
        env.config_url,
        env.secret(CONFIG_ADMIN),
        ca_file=env.ca_file,
        env="" if env.builtin else env.name,
    )


def stored_document(representation: dict[str, Any]) -> dict[str, Any]:
    """The sparse document inside a GET answer: fleet ``config`` or device ``overrides``."""
    return representation["config"] if "config" in representation else representation["overrides"]


def load_document(path: Path) -> dict[str, Any]:
    """A configuration document from a JSON or TOML file (by extension), validated against the schema."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"Config file `{path}` cannot be read ({exc.strerror}); check the path.") from None
    kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
    too_deep = InvalidInput(
        f"Config file `{path}` nests deeper than {contract.MAX_JSON_DEPTH} levels; a configuration needs 2."
    )
    try:
        doc = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except RecursionError:  # deeper than the parser can go
        raise too_deep from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"Config file `{path}` is not valid {kind} ({exc}); fix it.") from None
    if contract.json_depth(doc) > contract.MAX_JSON_DEPTH:
        raise too_deep
    try:
        return schema.validate(doc)
    except schema.ConfigInvalid as exc:
        raise InvalidInput(f"Config file `{path}`: {exc}") from None


def format_change(change: dict[str, dict[str, Any]]) -> list[str]:
    """One line per changed key: ``- key: old`` / ``+ key: new``, or ``~ key: old -> new``."""
    lines = []
    for key, values in change.items():
        old, new = values.get("old"), values.get("new")
        if old is None:
            lines.append(f"+ {key}: {json.dumps(new)}")
        elif new is None:
            lines.append(f"- {key}: {json.dumps(old)}")
        else:
            lines.append(f"~ {key}: {json.dumps(old)} -> {json.dumps(new)}")
    return lines
