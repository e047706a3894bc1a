"""FakeKeyVault: a test-only stand-in for Azure Key Vault's secrets REST API and Microsoft Entra ID's token endpoint.

Azure cannot be reached from this machine, so the real ``azure-keyvault-secrets`` and ``azure-identity`` libraries
talk to this HTTPS server on 127.0.0.1 instead (its certificate comes from a test CA: the client is given the CA
bundle). It implements exactly the calls those libraries make for iotctl's secrets commands, in the shapes the
service documents:

- Entra ID: ``POST /<tenant>/oauth2/v2.0/token`` with a client-credentials grant whose ``client_assertion`` is the
  workload identity's federated token (the Kubernetes service-account token the SDK reads from
  ``AZURE_FEDERATED_TOKEN_FILE``). A wrong assertion or client id gets Entra's AADSTS70021 answer. Tokens are
  issued for the scopes in ``scopes`` (Key Vault's; tests add Resource Manager's and the AKS server's) and each
  token remembers its scope, so :class:`FakeResourceManager` and :class:`FakeContainerRegistry` below accept only
  tokens meant for them.
- Key Vault: the bearer challenge (a request without a token gets 401 with ``WWW-Authenticate``), then
  ``GET /secrets`` (properties, paged), ``GET /secrets/<name>/versions``, ``GET /secrets/<name>[/<version>]`` and
  ``PUT /secrets/<name>``. ``forbid = True`` answers 403 ``ForbiddenByRbac`` as a vault does to an identity without a
  secrets role.

It is a fake: passing tests against it show that iotctl drives the real SDKs correctly and handles the service's
answers; they are not evidence that a real vault, a real federated credential or real RBAC are set up right.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

KEYVAULT_SCOPE = "https://vault.azure.net/.default"


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict
    created: int
    enabled: bool = True


@dataclass
class FakeKeyVault:
    """State of the fake: its tenant, the one workload identity it trusts, the secrets, and a request log."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    federated_token: str = field(default_factory=lambda: "sa-token-" + secrets.token_hex(16))
    forbid: bool = False
    page_size: int = 3
    secrets: dict[str, list[_Version]] = field(default_factory=dict)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, had a bearer token)
    tokens: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=lambda: {KEYVAULT_SCOPE})
    token_scopes: dict[str, str] = field(default_factory=dict)  # token -> the scope it was issued for
    url: str = ""
    address: str = ""  # where it listens (the Entra token endpoint's authority host)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, cert: Path, key: Path, public_url: str | None = None) -> FakeKeyVault:
        """Serve on 127.0.0.1. ``public_url`` (e.g. https://kv-iots6-dev.vault.azure.net) is the vault's name as
        clients use it (tests map that name to this port: tests/aks/conftest.py ``azure_names``)."""
        self._server, self._thread = serve_https(_handler(self), cert, key, "FakeKeyVault")
        self.address = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.url = public_url or self.address
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- helpers for tests -----------------------------------------------------------------------------------------
    def value(self, name: str) -> str:
        return self.secrets[name][-1].value

    def all_values(self) -> list[str]:
        return [v.value for versions in self.secrets.values() for v in versions]

    def put(self, name: str, value: str, content_type: str | None = None) -> None:
        self._store(name, {"value": value, "contentType": content_type})

    # -- the service -----------------------------------------------------------------------------------------------
    def _store(self, name: str, body: dict) -> _Version:
        version = _Version(
            version=uuid.uuid4().hex,
            value=body["value"],
            content_type=body.get("contentType"),
            tags=body.get("tags") or {},
            created=int(time.time()),
        )
        self.secrets.setdefault(name, []).append(version)
        return version

    def _bundle(self, name: str, v: _Version, with_value: bool) -> dict:
        bundle = {
            "id": f"{self.url}/secrets/{name}/{v.version}",
            "attributes": {
                "enabled": v.enabled,
                "created": v.created,
                "updated": v.created,
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": v.tags,
        }
        if v.content_type:
            bundle["contentType"] = v.content_type
        if with_value:
            bundle["value"] = v.value
        else:
            bundle["id"] = f"{self.url}/secrets/{name}" if v is self.secrets[name][-1] else bundle["id"]
        return bundle


def _handler(vault: FakeKeyVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

        def _send(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        # Entra ID token endpoint ------------------------------------------------------------------------------
        def _token(self) -> None:
            form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
            ok = (
                form.get("grant_type") == "client_credentials"
                and form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                and form.get("client_assertion") == vault.federated_token
                and form.get("client_id") == vault.client_id
                and form.get("scope") in vault.scopes
            )
            if not ok:
                self._send(
                    400,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS70021: No matching federated identity record found for presented "
                        "assertion. Assertion Issuer: 'https://oidc.example.test/'.",
                        "error_codes": [70021],
                    },
                )
                return
            token = secrets.token_urlsafe(24)
            vault.tokens.add(token)
            vault.token_scopes[token] = form["scope"]
            self._send(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

        # Key Vault --------------------------------------------------------------------------------------------
        def _authorised(self) -> bool:
            auth = self.headers.get("Authorization", "")
            vault.requests.append((self.command, urlsplit(self.path).path, auth.startswith("Bearer ")))
            if vault.token_scopes.get(auth.removeprefix("Bearer ")) == KEYVAULT_SCOPE:
                return True
            challenge = f'Bearer authorization="{vault.url}/{vault.tenant_id}", resource="https://vault.azure.net"'
            self._send(
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {"WWW-Authenticate": challenge},
            )
            return False

        def _forbidden(self) -> bool:
            if vault.forbid:
                self._send(
                    403,
                    {
                        "error": {
                            "code": "Forbidden",
                            "message": f"Caller is not authorized to perform action on resource. Caller: "
                            f"appid={vault.client_id}. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'.",
                            "innererror": {"code": "ForbiddenByRbac"},
                        }
                    },
                )
                return True
            return False

        def _vault(self) -> None:
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            query = parse_qs(urlsplit(self.path).query)
            if self.command == "PUT":
                body = json.loads(self._body() or b"{}")  # read before answering, so the connection stays usable
            if not self._authorised() or self._forbidden():
                return
            if parts == ["secrets"] and self.command == "GET":
                names = sorted(vault.secrets)
                start = int(query.get("$skiptoken", ["0"])[0])
                page = names[start : start + vault.page_size]
                nxt = start + vault.page_size
                self._send(
                    200,
                    {
                        "value": [vault._bundle(n, vault.secrets[n][-1], with_value=False) for n in page],
                        "nextLink": f"{vault.url}/secrets?api-version=7.6&$skiptoken={nxt}"
                        if nxt < len(names)
                        else None,
                    },
                )
                return
            if len(parts) >= 2 and parts[0] == "secrets":
                name = parts[1]
                if self.command == "PUT" and len(parts) == 2:
                    v = vault._store(name, body)
                    self._send(200, vault._bundle(name, v, with_value=True))
                    return
                versions = vault.secrets.get(name)
                if not versions:
                    self._send(
                        404,
                        {
                            "error": {
                                "code": "SecretNotFound",
                                "message": f"A secret with (name/id) {name} was not found in this key vault.",
                            }
                        },
                    )
                    return
                if len(parts) == 3 and parts[2] == "versions":
                    self._send(
                        200,
                        {
                            "value": [
                                vault._bundle(name, v, with_value=False)
                                | {"id": f"{vault.url}/secrets/{name}/{v.version}"}
                                for v in versions
                            ],
                            "nextLink": None,
                        },
                    )
                    return
                if len(parts) == 2 or (len(parts) == 3 and parts[2] == ""):
                    self._send(200, vault._bundle(name, versions[-1], with_value=True))
                    return
                match = [v for v in versions if v.version == parts[2]]
                if match:
                    self._send(200, vault._bundle(name, match[0], with_value=True))
                    return
            self._send(
                404,
                {
                    "error": {
                        "code": "NotFound",
                        "message": f"{self.command} {self.path} is not implemented by FakeKeyVault.",
                    }
                },
            )

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith(f"/{vault.tenant_id}/oauth2/v2.0/token"):
                self._token()
            else:
                self._send(404, {"error": "not found"})

        def do_GET(self) -> None:  # noqa: N802
            self._vault()

        def do_PUT(self) -> None:  # noqa: N802
            self._vault()

    return Handler


# ------------------------------------------------------------------------------------------------------------------
def serve_https(handler: type[BaseHTTPRequestHandler], cert: Path, key: Path, name: str):
    """A threaded HTTPS server on a free 127.0.0.1 port; returns (server, thread)."""
    import ssl

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # A short poll interval: shutdown() waits for one, and every test stops several of these servers.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return server, thread


class _JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _bearer(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")


@dataclass
class FakeResourceManager:
    """Azure Resource Manager, as far as `iotctl deploy aks` calls it: an AKS cluster's user credential
    (``listClusterUserCredential``: the kubeconfig whose cluster section gives the API server and its CA) and role
    assignments with their definitions. Accepts only tokens :class:`FakeKeyVault`'s Entra endpoint issued for
    ``https://management.azure.com/.default``. A fake: it shows iotctl's requests and parsing, not Azure's
    authorisation model."""

    entra: FakeKeyVault
    clusters: dict[str, dict] = field(default_factory=dict)  # cluster id -> {"server", "ca_data"}
    #: principal id -> [(scope, role name)]; an assignment at a scope also covers everything below it.
    assignments: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    forbid: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)
    scope: str = "https://management.azure.com/.default"
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self, cert: Path, key: Path) -> FakeResourceManager:
        self.entra.scopes.add(self.scope)
        self._server, self._thread = serve_https(self._handler(), cert, key, "FakeResourceManager")
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self):
        arm = self

        class Handler(_JsonHandler):
            def _route(self) -> None:
                url = urlsplit(self.path)
                arm.requests.append((self.command, url.path))
                if arm.entra.token_scopes.get(self._bearer()) != arm.scope:
                    self._send(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no valid token"}})
                    return
                if arm.forbid:
                    self._send(403, {"error": {"code": "AuthorizationFailed", "message": "not authorised"}})
                    return
                path = url.path
                if self.command == "POST" and path.endswith("/listClusterUserCredential"):
                    cluster = arm.clusters.get(path.removesuffix("/listClusterUserCredential"))
                    if cluster is None:
                        self._send(404, {"error": {"code": "ResourceNotFound", "message": "no such cluster"}})
                        return
                    import base64

                    import yaml

                    kubeconfig = {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [
                            {
                                "name": "aks",
                                "cluster": {
                                    "server": cluster["server"],
                                    "certificate-authority-data": cluster["ca_data"],
                                },
                            }
                        ],
                        "users": [{"name": "clusterUser", "user": {"exec": {"command": "kubelogin"}}}],
                        "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "clusterUser"}}],
                        "current-context": "aks",
                    }
                    value = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
                    self._send(200, {"kubeconfigs": [{"name": "clusterUser", "value": value}]})
                    return
                if self.command == "GET" and path.endswith("/providers/Microsoft.Authorization/roleAssignments"):
                    scope = path.removesuffix("/providers/Microsoft.Authorization/roleAssignments")
                    flt = parse_qs(url.query).get("$filter", [""])[0]
                    principal = flt.split("'")[1] if "'" in flt else ""
                    value = [
                        {
                            "id": f"{held}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                            "properties": {
                                "principalId": principal,
                                "scope": held,
                                "roleDefinitionId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
                                f"Microsoft.Authorization/roleDefinitions/{role.replace(' ', '-').lower()}",
                            },
                        }
                        for held, role in arm.assignments.get(principal, [])
                        if scope.lower().startswith(held.lower())
                    ]
                    self._send(200, {"value": value})
                    return
                if self.command == "GET" and "/providers/Microsoft.Authorization/roleDefinitions/" in path:
                    slug = path.rsplit("/", 1)[-1]
                    name = " ".join(w.capitalize() for w in slug.split("-"))
                    self._send(200, {"id": path, "properties": {"roleName": name.replace("Aks", "AKS")}})
                    return
                self._send(404, {"error": {"code": "NotFound", "message": f"{self.command} {path} is not faked"}})

            def do_GET(self) -> None:  # noqa: N802
                self._route()

            def do_POST(self) -> None:  # noqa: N802
                self._body()
                self._route()

        return Handler


@dataclass
class FakeContainerRegistry:
    """An Azure Container Registry's token exchange and the Docker registry API's manifest lookup: ``POST
    /oauth2/exchange`` (an Entra ID token for Resource Manager -> a refresh token), ``POST /oauth2/token`` (-> a
    pull token for one repository), ``HEAD /v2/<repository>/manifests/<tag or digest>``. A fake: it shows iotctl's
    side of the protocol, not a registry's content or ACR's RBAC."""

    entra: FakeKeyVault
    login_server: str = "iots6acr.azurecr.io"
    images: set[tuple[str, str]] = field(default_factory=set)  # (repository, tag or digest)
    requests: list[tuple[str, str]] = field(default_factory=list)
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: dict[str, str] = field(default_factory=dict)  # token -> repository
    arm_scope: str = "https://management.azure.com/.default"
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self, cert: Path, key: Path) -> FakeContainerRegistry:
        self.entra.scopes.add(self.arm_scope)
        self._server, self._thread = serve_https(self._handler(), cert, key, "FakeContainerRegistry")
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self):
        acr = self

        class Handler(_JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
                path = urlsplit(self.path).path
                acr.requests.append(("POST", path))
                if path == "/oauth2/exchange":
                    ok = (
                        form.get("grant_type") == "access_token"
                        and form.get("service") == acr.login_server
                        and acr.entra.token_scopes.get(form.get("access_token", "")) == acr.arm_scope
                    )
                    if not ok:
                        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad Entra ID token"}]})
                        return
                    token = secrets.token_urlsafe(24)
                    acr.refresh_tokens.add(token)
                    self._send(200, {"refresh_token": token})
                    return
                if path == "/oauth2/token":
                    scope = form.get("scope", "")
                    if form.get("refresh_token") not in acr.refresh_tokens or not scope.endswith(":pull"):
                        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad refresh token"}]})
                        return
                    token = secrets.token_urlsafe(24)
                    acr.access_tokens[token] = scope.split(":")[1]
                    self._send(200, {"access_token": token})
                    return
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": path}]})

            def do_HEAD(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                acr.requests.append(("HEAD", path))
                if not path.startswith("/v2/") or "/manifests/" not in path:
                    self._send(404)
                    return
                repository, reference = path[len("/v2/") :].split("/manifests/", 1)
                if acr.access_tokens.get(self._bearer()) != repository:
                    challenge = (
                        f'Bearer realm="https://{acr.login_server}/oauth2/token",service="{acr.login_server}",'
                        f'scope="repository:{repository}:pull"'
                    )
                    self._send(401, None, {"WWW-Authenticate": challenge})
                    return
                if (repository, reference) in acr.images:
                    self._send(200, None, {"Docker-Content-Digest": "sha256:" + "0" * 64})
                else:
                    self._send(404)

        return Handler
