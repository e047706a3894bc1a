"""The one boundary between iotctl and a Kubernetes API server: apply these objects, read these objects.

Everything that decides (what to wait for, what a status means, what to tell the operator) lives in
:mod:`iotctl.deploy.rollout` and :mod:`iotctl.deploy.identity` and talks to a :class:`Cluster`; tests give them a
``FakeKubernetes`` (tests/aks/fake_kubernetes.py) fed with real-shaped status objects. :class:`KubernetesCluster`,
the real implementation over the ``kubernetes`` client, is kept this thin on purpose: only a real cluster can
verify it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from iotctl.errors import AuthRefused, MissingDependency, OperationFailed, Unreachable

FIELD_MANAGER = "iotctl"


class Cluster(Protocol):
    def apply(self, objects: Iterable[dict[str, Any]]) -> list[str]:
        """Server-side apply each object (field manager ``iotctl``); returns ``kind/namespace/name`` of each."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind (in a namespace)."""
        ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object (foreground: its dependents go first); False when it did not exist."""
        ...


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


class KubernetesCluster:
    """A real API server reached with a kubeconfig file (0600, written from Terraform's outputs or `az aks`)."""

    def __init__(self, kubeconfig: Path, context: str | None = None) -> None:
        try:
            from kubernetes import config, dynamic
        except ImportError:
            raise MissingDependency("`kubernetes` is not installed; install iotctl with its dependencies.") from None
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException

        self._kubeconfig = Path(kubeconfig)
        try:
            api_client = config.new_client_from_config(config_file=str(kubeconfig), context=context)
        except (ConfigException, OSError) as exc:
            raise OperationFailed(
                f"kubeconfig `{kubeconfig}` cannot be used ({str(exc).splitlines()[0][:200]}); run "
                "`iotctl deploy aks --env ENV` to write it again."
            ) from None
        with self._errors():
            try:
                self._client = dynamic.DynamicClient(api_client)  # reads the API's discovery documents
            except ApiException as exc:
                if exc.status in (401, 403):
                    raise AuthRefused(
                        f"the cluster in `{kubeconfig}` refused iotctl (HTTP {exc.status}); your Entra ID identity "
                        "needs an AKS RBAC role on the cluster (docs/deploy-aks.md, The cluster)."
                    ) from None
                raise OperationFailed(
                    f"the cluster in `{kubeconfig}` answered HTTP {exc.status}: {exc.reason}."
                ) from None

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        with self._errors():
            try:
                return self._client.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                # A kind whose CRD was applied moments ago is not in the cached discovery yet: look again once.
                self._client.resources.invalidate_cache()
                return self._client.resources.get(api_version=api_version, kind=kind)

    def apply(self, objects: Iterable[dict[str, Any]]) -> list[str]:
        applied = []
        for obj in objects:
            resource = self._resource(obj["apiVersion"], obj["kind"])
            meta = obj["metadata"]
            with self._errors():
                resource.server_side_apply(
                    body=obj,
                    name=meta["name"],
                    namespace=meta.get("namespace"),
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                )
            applied.append(ref(obj))
        return applied

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            resource = self._resource(api_version, kind)
            with self._errors():
                return resource.get(name=name, namespace=namespace).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            resource = self._resource(api_version, kind)
        except ResourceNotFoundError:
            return []
        with self._errors():
            return [item.to_dict() for item in resource.get(namespace=namespace).items]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            resource = self._resource(api_version, kind)
            with self._errors():
                resource.delete(name=name, namespace=namespace, body={"propagationPolicy": "Foreground"})
        except (NotFoundError, ResourceNotFoundError):
            return False
        return True

    def _errors(self) -> Any:
        import contextlib

        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
        from urllib3.exceptions import HTTPError

        kubeconfig = self._kubeconfig

        @contextlib.contextmanager
        def translate():
            try:
                yield
            except (NotFoundError, ResourceNotFoundError):
                raise
            except DynamicApiError as exc:
                if exc.status in (401, 403):
                    raise AuthRefused(
                        f"the cluster in `{kubeconfig}` refused iotctl (HTTP {exc.status}); fetch fresh credentials "
                        "with `iotctl deploy aks --env ENV` or `az aks get-credentials`."
                    ) from None
                raise OperationFailed(
                    f"the cluster in `{kubeconfig}` answered HTTP {exc.status}: {exc.reason}."
                ) from None
            except HTTPError as exc:
                raise Unreachable(
                    f"the cluster API in `{kubeconfig}` cannot be reached ({type(exc).__name__}); check the network, "
                    "the cluster's authorised IP ranges and that the cluster is running."
                ) from None

        return translate()
