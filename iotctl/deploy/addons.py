"""Argo CD and the External Secrets Operator on the cluster: pinned upstream charts, rendered here, applied server-side.

Why this way (and not Terraform's helm provider, nor a `helm` binary):

- Terraform manages Azure only (docs/deploy-aks.md): a Kubernetes provider configured from a cluster made in the
  same apply breaks plans whenever the cluster is replaced.
- The upstream charts are what their projects support; they are pulled at a pinned version (below) and rendered
  offline by Helm v4 itself, in-process (``helm-python-sdk``: no ``helm`` binary to install), then applied through
  the one cluster boundary (:mod:`iotctl.deploy.cluster`) with **server-side apply**. Server-side apply is what both
  projects recommend for their CRDs: Argo CD's ApplicationSet CRD is larger than the 256 KiB
  ``last-applied-configuration`` annotation a client-side ``kubectl apply`` writes. Re-running is a no-op, an
  upgrade is a new pin, and no Helm release Secret is kept (Argo CD and ESO are infrastructure of this CLI, like the
  metrics ConfigMap, not releases someone upgrades by hand).
- Helm hooks are emulated for what these charts use them for: hook Jobs are deleted before they are applied again
  (``before-hook-creation``), test hooks are skipped.

Order: namespaces, then CRDs (until ``Established``), then everything else, then every Deployment and StatefulSet
until it is available. Charts are cached under the state directory (``charts/<name>-<version>.tgz``); a mirror (an
HTTP chart repository or an ``oci://`` prefix holding both charts under their upstream names) replaces the upstream
repositories for air-gapped or proxied networks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotctl.deploy.cluster import Cluster, ref
from iotctl.errors import MissingDependency, OperationFailed, Unreachable

CHART_MIRROR_ENV = "IOTCTL_AKS_CHART_MIRROR"

#: Kinds without a namespace (objects of other kinds that a chart renders without one go to the release namespace).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "PriorityClass",
        "StorageClass",
        "IngressClass",
        "APIService",
        "PersistentVolume",
        "ClusterSecretStore",
        "ClusterExternalSecret",
        "ClusterGenerator",
        "ClusterPushSecret",
    }
)
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


@dataclass(frozen=True)
class Addon:
    """One upstream chart at a pinned version, with the values iotctl sets."""

    name: str
    chart: str
    version: str
    repo_url: str
    namespace: str
    release: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def archive(self) -> str:
        return f"{self.chart}-{self.version}.tgz"


# Pinned from the projects' release notes (argo-helm `argo-cd-10.9.0`, external-secrets `helm-chart-2.3.0`); bump
# deliberately, after reading their upgrade notes (docs/deploy-aks.md, "ArgoCD and External Secrets").
ARGOCD = Addon(
    name="Argo CD",
    chart="argo-cd",
    version="10.9.0",
    repo_url="https://argoproj.github.io/argo-helm",
    namespace="argocd",
    release="argocd",
    # No SSO (Dex) and no notifications controller: the platform needs the application and ApplicationSet
    # controllers, the repo server, the API server for `argocd` CLI access, and Redis.
    values={"dex": {"enabled": False}, "notifications": {"enabled": False}},
)
EXTERNAL_SECRETS = Addon(
    name="External Secrets Operator",
    chart="external-secrets",
    version="2.3.0",
    repo_url="https://charts.external-secrets.io",
    namespace="external-secrets",
    release="external-secrets",
    values={"installCRDs": True},
)
ADDONS: tuple[Addon, ...] = (ARGOCD, EXTERNAL_SECRETS)


@dataclass(frozen=True)
class AddonResult:
    name: str
    version: str
    applied: int
    workloads: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "applied": self.applied, "workloads": list(self.workloads)}


def _helm():
    try:
        import helm_python
    except ImportError:
        raise MissingDependency(
            "`helm-python-sdk` is not installed; install iotctl with its dependencies (pip install iotctl)."
        ) from None
    helm_python.disable_logging()
    return helm_python


def fetch(addon: Addon, cache_dir: Path, mirror: str | None = None) -> Path:
    """The chart archive, pulled once into ``cache_dir`` (from ``mirror`` when given)."""
    cache_dir = Path(cache_dir)
    archive = cache_dir / addon.archive
    if archive.exists():
        return archive
    helm = _helm()
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    source = mirror or addon.repo_url
    try:
        if source.startswith("oci://"):
            helm.pull(f"{source.rstrip('/')}/{addon.chart}", version=addon.version, destination=cache_dir)
        else:
            helm.pull(addon.chart, repo_url=source, version=addon.version, destination=cache_dir)
    except helm.HelmError as exc:
        raise Unreachable(
            f"chart `{addon.chart}` {addon.version} could not be pulled from `{source}` "
            f"({str(exc).splitlines()[0][:200]}); check the network, or set {CHART_MIRROR_ENV} to a mirror."
        ) from None
    if not archive.exists():
        raise OperationFailed(f"pulling `{addon.chart}` {addon.version} from `{source}` left no `{archive.name}`.")
    return archive


def render(addon: Addon, archive: Path) -> list[dict[str, Any]]:
    """The chart's objects as Helm would install them (CRDs from ``crds/`` included, test hooks left out)."""
    import yaml

    helm = _helm()
    try:
        with helm.Chart.load(archive) as chart:
            crds = [doc for item in chart.crds for doc in yaml.safe_load_all(item.get("data") or "") if doc]
            rendered = chart.render(addon.values, name=addon.release, namespace=addon.namespace, is_install=True)
    except helm.HelmError as exc:
        raise OperationFailed(
            f"chart `{archive.name}` does not render ({str(exc).splitlines()[0][:200]}); delete it to pull it again."
        ) from None
    objects = list(crds)
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if not doc or not isinstance(doc, dict) or "kind" not in doc:
                continue
            hook = (doc.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook", "")
            if "test" in hook:
                continue
            objects.append(doc)
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if obj["kind"] not in CLUSTER_SCOPED and not meta.get("namespace"):
            meta["namespace"] = addon.namespace
    return objects


def _is_hook_job(obj: dict[str, Any]) -> bool:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return obj.get("kind") == "Job" and "helm.sh/hook" in annotations


def _ready(obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    if kind == "CustomResourceDefinition":
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in status.get("conditions", []))
    wanted = spec.get("replicas", 1)
    if kind == "Deployment":
        available = any(
            c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions", [])
        )
        return available and status.get("updatedReplicas", 0) >= wanted and status.get("availableReplicas", 0) >= wanted
    if kind == "StatefulSet":
        return status.get("readyReplicas", 0) >= wanted and status.get("updatedReplicas", wanted) >= wanted
    return True


def wait_ready(
    cluster: Cluster,
    objects: list[dict[str, Any]],
    what: str,
    timeout_s: float,
    poll_s: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until every object is ready (CRDs Established, workloads available); one sentence naming the first not."""
    deadline = clock() + timeout_s
    pending = list(objects)
    while True:
        pending = [
            o
            for o in pending
            if not _ready(
                cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
            )
        ]
        if not pending:
            return
        if clock() >= deadline:
            first = pending[0]
            ns = first["metadata"].get("namespace")
            hint = (
                f"`kubectl -n {ns} describe {first['kind'].lower()} {first['metadata']['name']}` says why"
                if ns
                else f"`kubectl describe crd {first['metadata']['name']}` says why"
            )
            raise OperationFailed(
                f"{what}: {ref(first)} is not ready after {int(timeout_s)} s ({len(pending)} object(s) waiting); "
                f"{hint}."
            )
        sleep(poll_s)


def install(
    cluster: Cluster,
    addon: Addon,
    cache_dir: Path,
    mirror: str | None = None,
    timeout_s: float = 600.0,
    progress: Callable[[str], None] = lambda _line: None,
    **wait_options: Any,
) -> AddonResult:
    """Make sure ``addon`` runs at its pinned version: apply its rendered objects, wait until they are ready."""
    archive = fetch(addon, cache_dir, mirror)
    objects = render(addon, archive)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": addon.namespace}}
    crds = [o for o in objects if (o.get("apiVersion"), o.get("kind")) == CRD]
    rest = [o for o in objects if (o.get("apiVersion"), o.get("kind")) != CRD]
    progress(f"{addon.name} {addon.version}: applying {len(objects)} objects (server-side) in `{addon.namespace}`")
    cluster.apply([namespace])
    if crds:
        cluster.apply(crds)
        wait_ready(cluster, crds, f"{addon.name}'s CRDs", timeout_s, **wait_options)
    for job in (o for o in rest if _is_hook_job(o)):
        cluster.delete(job["apiVersion"], job["kind"], job["metadata"]["name"], job["metadata"].get("namespace"))
    cluster.apply(rest)
    workloads = [o for o in rest if o.get("kind") in ("Deployment", "StatefulSet")]
    progress(f"{addon.name}: waiting for {len(workloads)} workload(s) to be available")
    wait_ready(cluster, workloads, addon.name, timeout_s, **wait_options)
    return AddonResult(addon.name, addon.version, len(objects) + 1, tuple(ref(w) for w in workloads))
