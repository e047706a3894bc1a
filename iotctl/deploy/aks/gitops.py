"""Pure helpers of the AKS flow: Terraform outputs and plans in words, the GitOps chart rendered, a sync triggered,
the images an environment's values name, an Application's summary."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from iotctl.deploy import addons, rollout
from iotctl.deploy.aks.model import BUILT_IMAGES, ENVIRONMENTS, GITOPS_RELEASE, deep_merge
from iotctl.deploy.cluster import Cluster
from iotctl.deploy.terraform import Plan
from iotctl.errors import InvalidInput, OperationFailed

# ------------------------------------------------------------------------------------------------ helpers


def output(outputs: dict[str, Any], name: str, root: str) -> Any:
    value = outputs.get(name)
    if value in (None, ""):
        raise OperationFailed(
            f"Terraform output `{name}` of `{root}` is missing or empty; apply the root again, or check its outputs.tf."
        )
    return value


def plan_counts(plan: Plan) -> str:
    parts = [f"{n} to {action}" for action, n in plan.counts().items() if n]
    return ", ".join(parts) or "no changes"


def plan_lines(plan: Plan) -> list[str]:
    return [f"{c.action:>8}  {c.address}" for c in plan.changes]


def lb_address(obj: dict[str, Any]) -> str | None:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None


def elements_of(appset: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The GitOps values entries behind a live ApplicationSet's list elements."""
    if not appset:
        return []
    keys = (
        "keyVaultUri",
        "workloadIdentityClientId",
        "containerRegistryLoginServer",
        "postgresHost",
        "postgresAdminLogin",
        "postgresSubnetCidr",
        "prometheusQueryEndpoint",
        "configServerHost",
    )
    out = []
    for generator in (appset.get("spec") or {}).get("generators") or []:
        for element in (generator.get("list") or {}).get("elements") or []:
            if element.get("env") not in ENVIRONMENTS:
                continue
            entry = {"name": element["env"], "autoSync": bool(element.get("autoSync"))}
            if element.get("revision"):
                entry["revision"] = element["revision"]
            entry.update({k: str(element.get(k) or "") for k in keys})
            if not entry["postgresAdminLogin"]:
                entry["postgresAdminLogin"] = "postgres"
            out.append(entry)
    return out


def render_gitops(chart_dir: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The ApplicationSet and AppProject of infra/argocd for these values (Helm v4, its values.schema.json)."""
    import yaml

    helm = addons._helm()
    try:
        with helm.Chart.load(chart_dir) as chart:
            rendered = chart.render(values, name=GITOPS_RELEASE, namespace=rollout.ARGOCD_NAMESPACE, is_install=True)
    except helm.HelmValuesError as exc:
        raise InvalidInput(
            f"the GitOps values are refused by `{chart_dir}/values.schema.json` ({str(exc).splitlines()[0][:240]}); "
            "check the Terraform outputs and the hosts you passed."
        ) from None
    except helm.HelmError as exc:
        raise OperationFailed(f"`{chart_dir}` does not render ({str(exc).splitlines()[0][:240]}).") from None
    objects = []
    for path in sorted(rendered):
        objects.extend(d for d in yaml.safe_load_all(rendered[path]) if isinstance(d, dict) and d.get("kind"))
    return objects


def trigger_sync(cluster: Cluster, env: str) -> str:
    """Ask Argo CD to sync the environment's Application (as `argocd app sync` does: an `operation`)."""
    request = uuid.uuid4().hex[:12]
    cluster.apply(
        [
            {
                "apiVersion": rollout.APPLICATION[0],
                "kind": rollout.APPLICATION[1],
                "metadata": {"name": rollout.application_of(env), "namespace": rollout.ARGOCD_NAMESPACE},
                "operation": {
                    "initiatedBy": {"username": "iotctl"},
                    "info": [{"name": "requested-by", "value": f"iotctl deploy aks ({request})"}],
                    "sync": {"syncStrategy": {"hook": {}}},
                },
            }
        ]
    )
    return request


def wanted_images(root: Path, env: str, registry: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The iots6-built images of ``values-<env>.yaml`` over values.yaml, as the chart resolves them."""
    import yaml

    chart = root / "infra" / "helm" / "iots6"
    try:
        base = yaml.safe_load((chart / "values.yaml").read_text()) or {}
        over = yaml.safe_load((chart / f"values-{env}.yaml").read_text()) or {}
        app_version = str((yaml.safe_load((chart / "Chart.yaml").read_text()) or {}).get("appVersion", ""))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"the chart's values in `{chart}` cannot be read ({exc}); fix them.") from None
    values = deep_merge(base, over)
    images = values.get("images") or {}
    require_digests = bool(images.get("requireDigests"))
    out = []
    for component in BUILT_IMAGES:
        image = images.get(component) or {}
        host = image.get("registry") or registry or images.get("registry") or ""
        repository = image.get("repository", f"iots6-{BUILT_IMAGES[component]}")
        tag = str(image.get("tag") or app_version)
        digest = str(image.get("digest") or "")
        reference = f"{host}/{repository}:{tag}" + (f"@{digest}" if digest else "")
        out.append(
            (
                component,
                {
                    "registry": host,
                    "repository": repository,
                    "tag": tag,
                    "digest": digest,
                    "lookup": digest or tag,
                    "reference": reference,
                    "unpinned": require_digests and not digest,
                    "target": BUILT_IMAGES[component],
                },
            )
        )
    return out


def push_hint(registry: str, image: dict[str, Any], component: str) -> str:
    ref = f"{registry}/{image['repository']}:{image['tag']}"
    return (
        f"build and push it: `az acr login --name {registry.split('.')[0]} && docker build -f services/Dockerfile "
        f"--target {image['target']} -t {ref} . && docker push {ref}` (docs/deploy-aks.md, Images)"
    )


def application_summary(app: dict[str, Any] | None) -> dict[str, Any]:
    if app is None:
        return {"exists": False}
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    return {
        "exists": True,
        "sync": (status.get("sync") or {}).get("status", "Unknown"),
        "health": (status.get("health") or {}).get("status", "Unknown"),
        "revision": (status.get("sync") or {}).get("revision"),
        "last_sync": operation.get("finishedAt") or operation.get("startedAt"),
        "last_sync_phase": operation.get("phase"),
        "reconciled_at": status.get("reconciledAt"),
        "images": list((status.get("summary") or {}).get("images") or []),
    }
