"""Azure's management plane and container registry, reached with the operator's Entra ID identity.

``iotctl deploy aks`` needs four things from Azure besides Terraform, each with a token from ``azure-identity``'s
``DefaultAzureCredential`` (Azure CLI login, ``AZURE_*`` variables, workload identity, managed identity):

- a token for the AKS server application (``6dae42f8-…/.default``): the cluster has local accounts off, so this
  token is the operator's Kubernetes credential (no kubelogin needed);
- the API server's URL and CA (``listClusterUserCredential``, what ``az aks get-credentials`` reads; its user
  section is ignored: the kubeconfig iotctl writes carries the token above);
- the roles an identity holds on a scope (role assignments and their definitions): the last link of the workload
  identity chain;
- whether an image exists in the Azure Container Registry (the Docker registry API, with a registry token
  exchanged for the Entra ID token, as ``az acr login --expose-token`` does).

Requests go over HTTPS with ``requests`` (honouring ``REQUESTS_CA_BUNDLE``); the management endpoint is
``https://management.azure.com`` unless ``IOTCTL_AZURE_ARM_URL`` names a sovereign cloud's (or a test's) endpoint.
Tokens are never logged, returned to the CLI or put into an error message. Failures become iotctl's typed errors in
:meth:`Azure._call`, one sentence each.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from iotctl.errors import AuthRefused, InvalidInput, NotFound, OperationFailed, Unreachable

ARM_URL_ENV = "IOTCTL_AZURE_ARM_URL"
ARM_URL = "https://management.azure.com"
#: Microsoft's "Azure Kubernetes Service AAD Server" application: the audience of AKS-managed Entra ID tokens.
AKS_SERVER_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
AKS_API_VERSION = "2024-10-01"
AUTHORIZATION_API_VERSION = "2022-04-01"
IP_ECHO_ENV = "IOTCTL_AKS_IP_ECHO_URL"
IP_ECHO_URL = "https://api.ipify.org"
#: What a registry may answer for a tag: an image index (multi-arch) or a single manifest, OCI or Docker.
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@dataclass(frozen=True)
class ClusterEndpoint:
    """The API server as a kubeconfig names it: URL and the cluster CA (base64 PEM, as kubeconfig stores it)."""

    server: str
    ca_data: str


def _first_line(text: str, limit: int = 200) -> str:
    return (text.strip().splitlines() or [""])[0][:limit]


class Azure:
    """Entra ID tokens and the few ARM calls the deploy needs."""

    def __init__(self, credential: Any = None, arm_url: str | None = None, timeout_s: float = 30.0) -> None:
        if credential is None:
            from iotctl.secrets.vault import default_credential

            credential = default_credential()
        self._credential = credential
        self.arm_url = (arm_url or os.environ.get(ARM_URL_ENV) or ARM_URL).rstrip("/")
        self.timeout_s = timeout_s
        self._session: Any = None

    @property
    def arm_scope(self) -> str:
        return f"{self.arm_url}/.default"

    # -- tokens ---------------------------------------------------------------------------------------------------
    def token(self, scope: str, what: str) -> str:
        """An access token for ``scope``; ``what`` names its use in an error ("the AKS API server")."""
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        try:
            return self._credential.get_token(scope).token
        except ClientAuthenticationError as exc:
            text = str(getattr(exc, "message", None) or exc)
            if "AADSTS70021" in text:
                reason = "AADSTS70021: no federated credential matches this workload's token"
            else:
                reason = _first_line(text)
            raise AuthRefused(
                f"no Azure credential was accepted for {what} ({reason}); run `az login` (and `az account set "
                "--subscription …`), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and a secret, certificate or "
                "AZURE_FEDERATED_TOKEN_FILE."
            ) from None
        except ServiceRequestError as exc:
            raise Unreachable(
                f"Microsoft Entra ID cannot be reached for {what} ({_first_line(str(exc))}); check your network."
            ) from None

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _call(self, method: str, url: str, what: str, fix: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One HTTPS request; the response (or None for a 404 with ``missing_ok``); typed errors otherwise."""
        import requests

        if self._session is None:
            self._session = requests.Session()  # one TLS connection per host for all calls of a run
        try:
            response = self._session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.exceptions.SSLError:
            raise Unreachable(
                f"{what} at `{url.split('?')[0]}` presented a certificate this machine does not trust; check the "
                "URL, your proxy and REQUESTS_CA_BUNDLE."
            ) from None
        except requests.exceptions.RequestException as exc:
            raise Unreachable(
                f"{what} at `{url.split('?')[0]}` cannot be reached ({type(exc).__name__}); check your network, "
                "VPN and the address."
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise AuthRefused(f"{what} refused your identity (HTTP {response.status_code}); {fix}.")
        if response.status_code == 404:
            raise NotFound(f"{what} does not exist (`{url.split('?')[0]}`); {fix}.")
        if response.status_code >= 400:
            raise OperationFailed(
                f"{what} answered HTTP {response.status_code} ({_error_code(response)}); try again, or check the "
                "Azure status page."
            )
        return response

    def _arm(self, method: str, path: str, api_version: str, what: str, fix: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token(self.arm_scope, 'Azure Resource Manager')}"}
        url = f"{self.arm_url}{path}{'&' if '?' in path else '?'}api-version={api_version}"
        return self._call(method, url, what, fix, headers=headers).json()

    # -- the cluster ----------------------------------------------------------------------------------------------
    def cluster_endpoint(self, cluster_id: str) -> ClusterEndpoint:
        """The API server's URL and CA, from the cluster's user credential (as `az aks get-credentials`)."""
        import yaml

        data = self._arm(
            "POST",
            f"{cluster_id}/listClusterUserCredential",
            AKS_API_VERSION,
            f"AKS cluster `{cluster_id.rsplit('/', 1)[-1]}`",
            "you need `Azure Kubernetes Service Cluster User Role` on it (Terraform grants the deployer more)",
        )
        try:
            kubeconfig = yaml.safe_load(base64.b64decode(data["kubeconfigs"][0]["value"]))
            cluster = kubeconfig["clusters"][0]["cluster"]
            return ClusterEndpoint(server=cluster["server"], ca_data=cluster["certificate-authority-data"])
        except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
            raise OperationFailed(
                f"AKS returned no usable kubeconfig for `{cluster_id.rsplit('/', 1)[-1]}`; check the cluster in the "
                "portal and try again."
            ) from None

    def kubernetes_token(self) -> str:
        """The operator's Entra ID token for the AKS API server (local accounts are off)."""
        return self.token(AKS_SERVER_SCOPE, "the AKS API server")

    # -- role assignments -----------------------------------------------------------------------------------------
    def role_names(self, scope: str, principal_id: str) -> tuple[str, ...]:
        """Names of the roles ``principal_id`` holds at, above or below ``scope`` (a resource id)."""
        what = f"the role assignments on `{scope.rsplit('/', 1)[-1]}`"
        fix = "you need `Reader` (Microsoft.Authorization/roleAssignments/read) on it"
        flt = quote(f"principalId eq '{principal_id}'")
        assignments = self._arm(
            "GET",
            f"{scope}/providers/Microsoft.Authorization/roleAssignments?$filter={flt}",
            AUTHORIZATION_API_VERSION,
            what,
            fix,
        )
        names = []
        for assignment in assignments.get("value", []):
            definition_id = assignment.get("properties", {}).get("roleDefinitionId")
            if not definition_id:
                continue
            definition = self._arm("GET", definition_id, AUTHORIZATION_API_VERSION, what, fix)
            name = definition.get("properties", {}).get("roleName")
            if name and name not in names:
                names.append(name)
        return tuple(names)

    # -- the container registry -----------------------------------------------------------------------------------
    def registry(self, login_server: str, tenant_id: str | None = None) -> Registry:
        return Registry(self, login_server, tenant_id)


class Registry:
    """An Azure Container Registry through the Docker registry API, with a per-repository pull token."""

    def __init__(self, azure: Azure, login_server: str, tenant_id: str | None) -> None:
        self._azure = azure
        self.login_server = login_server
        self._tenant_id = tenant_id
        self._refresh_token: str | None = None

    @property
    def _base(self) -> str:
        return f"https://{self.login_server}"

    def _fix(self) -> str:
        return (
            f"you need `AcrPull` (or more) on registry `{self.login_server}`, and `az acr login --name "
            f"{self.login_server.split('.')[0]}` must work"
        )

    def _refresh(self) -> str:
        if self._refresh_token is None:
            aad = self._azure.token(self._azure.arm_scope, f"registry `{self.login_server}`")
            form = {"grant_type": "access_token", "service": self.login_server, "access_token": aad}
            if self._tenant_id:
                form["tenant"] = self._tenant_id
            answer = self._azure._call(
                "POST", f"{self._base}/oauth2/exchange", f"registry `{self.login_server}`", self._fix(), data=form
            ).json()
            self._refresh_token = answer.get("refresh_token") or ""
        return self._refresh_token

    def _pull_token(self, repository: str) -> str:
        form = {
            "grant_type": "refresh_token",
            "service": self.login_server,
            "scope": f"repository:{repository}:pull",
            "refresh_token": self._refresh(),
        }
        answer = self._azure._call(
            "POST", f"{self._base}/oauth2/token", f"registry `{self.login_server}`", self._fix(), data=form
        ).json()
        return answer.get("access_token") or ""

    def manifest_exists(self, repository: str, reference: str) -> bool:
        """Whether ``repository:reference`` (a tag or ``sha256:`` digest) is in the registry."""
        headers = {"Authorization": f"Bearer {self._pull_token(repository)}", "Accept": MANIFEST_TYPES}
        response = self._azure._call(
            "HEAD",
            f"{self._base}/v2/{repository}/manifests/{reference}",
            f"image `{self.login_server}/{repository}`",
            self._fix(),
            missing_ok=True,
            headers=headers,
        )
        return response is not None


def _error_code(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no detail"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("message") or "no detail")[:120]
    return response.reason or "no detail"


def parse_cidrs(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated CIDRs (a bare address becomes /32 or /128); 0.0.0.0/0 and ::/0 are refused."""
    out = []
    for raw in values:
        for item in str(raw).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise InvalidInput(f"`{item}` is not an IP address or CIDR; write e.g. 198.51.100.7/32.") from None
            if network.prefixlen == 0:
                raise InvalidInput(
                    f"`{item}` would open the API server and the vault to everyone; name your own address instead."
                )
            if str(network) not in out:
                out.append(str(network))
    return tuple(out)


def detect_public_address(url: str | None = None, timeout_s: float = 10.0) -> str:
    """This machine's public address as a /32 (or /128), from an HTTPS echo service (``IOTCTL_AKS_IP_ECHO_URL``)."""
    import requests

    url = url or os.environ.get(IP_ECHO_ENV) or IP_ECHO_URL
    fix = "pass it with --allow-cidr (or IOTCTL_AKS_ALLOW_CIDRS)"
    try:
        response = requests.get(url, timeout=timeout_s)
        response.raise_for_status()
        address = ipaddress.ip_address(response.text.strip())
    except (requests.exceptions.RequestException, ValueError):
        raise Unreachable(f"your public address could not be detected through `{url}`; {fix}.") from None
    if address.is_private or address.is_loopback:
        raise InvalidInput(f"`{url}` reported the private address `{address}`; {fix}.")
    return f"{address}/{address.max_prefixlen}"
