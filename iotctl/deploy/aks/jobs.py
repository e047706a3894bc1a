"""What other commands need of a deployed AKS environment: its vault (``iotctl secrets``) and the migration Job
(``iotctl db migrate --env <aks env>``)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.deploy import rollout
from iotctl.deploy.aks.flow import AksDeployment
from iotctl.deploy.aks.model import ENVIRONMENTS, PACKAGE_REPO, AksRequest, Hooks, Layout, read_json
from iotctl.errors import NotFound, OperationFailed

# ---------------------------------------------------------------------------------------------- for secrets


@dataclass(frozen=True)
class VaultTarget:
    url: str
    broker_host: str | None = None
    config_host: str | None = None
    source: str = ""
    #: The environment runs the chart's PostgreSQL (Terraform made no server, so iotctl seeds its admin password).
    in_cluster_database: bool = False

    def tls_names(self):
        from iotctl.secrets.vault import TlsNames

        if self.broker_host and self.config_host:
            return TlsNames(broker=[self.broker_host], config=[self.config_host])
        return None


def vault_target(state_dir: Path, env: str, explicit_url: str | None = None) -> VaultTarget:
    """Which vault `iotctl secrets --env ENV` works on: --vault-url, the registered environment, or the last
    deployment's Terraform outputs from this machine."""
    from iotctl.environments import KEYVAULT_PREFIX, environments_dir, load

    layout = Layout(Path(state_dir))
    record = read_json(layout.record(env)) if env in ENVIRONMENTS else {}
    hosts = record.get("inputs") or {}
    broker, config = hosts.get("broker_host"), hosts.get("config_host")
    # The committed sizing (environments/dev.tfvars) gives dev the in-cluster database; a deployment says for sure.
    in_cluster = not (record.get("outputs") or {}).get("postgres") if record else env == "dev"
    if explicit_url:
        return VaultTarget(explicit_url, broker, config, "--vault-url", in_cluster)
    if (environments_dir(Path(state_dir)) / f"{env}.toml").exists():
        registered = load(Path(state_dir), env)
        if registered.credentials.startswith(KEYVAULT_PREFIX):
            if not broker:
                broker = registered.broker.host
            if not config:
                from urllib.parse import urlsplit

                config = urlsplit(registered.config_url).hostname
            return VaultTarget(registered.credentials[len(KEYVAULT_PREFIX) :], broker, config, f"environment `{env}`")
    uri = (record.get("outputs") or {}).get("key_vault_uri")
    if uri:
        return VaultTarget(uri, broker, config, f"the last `deploy aks --env {env}`", in_cluster)
    raise NotFound(
        f"no Key Vault is known for `{env}`; deploy it (`iotctl deploy aks --env {env}`), or pass --vault-url "
        "(IOTCTL_KEYVAULT_URL)."
    )


# ------------------------------------------------------------------------------------------ migration Job


@dataclass
class MigrationRun:
    job: str
    namespace: str
    succeeded: bool
    message: str = ""
    logs_hint: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "namespace": self.namespace,
            "succeeded": self.succeeded,
            "message": self.message,
            "logs": self.logs_hint,
        }


def run_migration_job(
    state_dir: Path,
    env: str,
    *,
    timeout_s: float = 900.0,
    progress: Callable[[str], None] = lambda _line: None,
    azure: Any = None,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> MigrationRun:
    """`iotctl db migrate --env <aks env>`: run the chart's migration Job once more, as Argo CD last ran it.

    The chart's Job (``iots6-migrate``, a Sync hook kept until the next sync: ``BeforeHookCreation``) carries the
    image, configuration and Secrets of the last sync. A copy of it runs as ``iots6-migrate-iotctl-<time>`` (the
    same labels, so the same NetworkPolicy lets it reach the database), and its outcome is reported. Migrations are
    idempotent and serialised by an advisory lock, so this is safe while a sync runs one too.
    """
    layout = Layout(Path(state_dir))
    record = read_json(layout.record(env)) if env in ENVIRONMENTS else {}
    if not record:
        raise NotFound(
            f"`{env}` was not deployed by `iotctl deploy aks` on this machine (no `{layout.record(env)}`); run the "
            "migrations where it was deployed (`iotctl db migrate` there), or sync its Application "
            "(`argocd app sync iots6-<env>`): every sync runs them."
        )
    platform_out = record.get("platform") or {}
    deployment = AksDeployment(
        Path(state_dir),
        AksRequest(env=env),
        Hooks(step=progress),
        root=PACKAGE_REPO,
        azure=azure,
        poll_s=poll_s,
        clock=clock,
        sleep=sleep,
    )
    cluster = deployment.cluster(platform_out)
    ns = rollout.namespace_of(env)
    template = cluster.get("batch/v1", "Job", "iots6-migrate", ns)
    if template is None:
        raise NotFound(
            f"the migration Job `{ns}/iots6-migrate` is not in the cluster (the environment never synced); run "
            f"`iotctl deploy aks --env {env}`, whose sync runs the migrations."
        )
    name = f"iots6-migrate-iotctl-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    job = _job_copy(template, name)
    progress(f"migrations: running Job {ns}/{name} (a copy of the chart's iots6-migrate)")
    cluster.apply([job])
    deadline = clock() + timeout_s
    logs = f"kubectl -n {ns} logs job/{name} --all-containers"
    while True:
        current = cluster.get("batch/v1", "Job", name, ns) or {}
        conditions = (current.get("status") or {}).get("conditions") or []
        done = {c.get("type"): c for c in conditions if c.get("status") == "True"}
        if "Complete" in done or "SuccessCriteriaMet" in done:
            return MigrationRun(name, ns, True, "the migrations ran; the schema is up to date", logs)
        if "Failed" in done:
            reason = done["Failed"].get("message") or done["Failed"].get("reason") or "failed"
            raise OperationFailed(f"the migration Job `{ns}/{name}` failed ({reason}); read `{logs}`.")
        if clock() >= deadline:
            raise OperationFailed(
                f"the migration Job `{ns}/{name}` did not finish within {int(timeout_s)} s; read `{logs}`."
            )
        sleep(poll_s)


def _job_copy(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job's spec for a new Job: no status, no generated selector or controller labels, no hook annotations."""
    generated = ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name")
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    pod_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    pod_meta["labels"] = {k: v for k, v in (pod_meta.get("labels") or {}).items() if k not in generated}
    spec["ttlSecondsAfterFinished"] = 86400
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in generated}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {"iots6.io/started-by": "iotctl db migrate"},
        },
        "spec": spec,
    }
