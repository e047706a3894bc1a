"""Wait until an environment is Synced and Healthy, and say what is wrong when it is not.

What an environment's rollout needs, read through a :class:`~iotctl.deploy.cluster.Cluster`:

1. its ArgoCD Application (``argocd/iots6-<env>``): sync ``Synced``, health ``Healthy``, no sync error;
2. its SecretStore (``iots6-keyvault``) and every ExternalSecret in ``iots6-<env>``: condition ``Ready=True``;
3. its pods: none stuck in ``ImagePullBackOff``/``ErrImagePull``/``CrashLoopBackOff``/``CreateContainerConfigError``.

:func:`observe` turns those objects into :class:`Check` rows (what, ready, state, message, likely fix);
:func:`wait` polls until every check is ready, a terminal failure shows, or the time is up, calling ``on_change``
whenever the rows change (the CLI draws them as a live table on a terminal and as plain lines in a pipe). The likely
fixes come from the messages ArgoCD, ESO and Entra ID really print (AADSTS70021, ForbiddenByRbac, SecretNotFound…).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iotctl.deploy.cluster import Cluster
from iotctl.errors import OperationFailed

APPLICATION = ("argoproj.io/v1alpha1", "Application")
EXTERNAL_SECRET = ("external-secrets.io/v1", "ExternalSecret")
SECRET_STORE = ("external-secrets.io/v1", "SecretStore")
POD = ("v1", "Pod")
ARGOCD_NAMESPACE = "argocd"
SECRET_STORE_NAME = "iots6-keyvault"
STUCK_POD_REASONS = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError")


def namespace_of(env: str) -> str:
    return f"iots6-{env}"


def application_of(env: str) -> str:
    return f"iots6-{env}"


@dataclass(frozen=True)
class Check:
    what: str  # e.g. "Application argocd/iots6-prod"
    ready: bool
    state: str  # e.g. "Synced/Healthy", "SecretSyncedError"
    message: str = ""
    fix: str = ""
    terminal: bool = False  # waiting longer cannot help

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "ready": self.ready,
            "state": self.state,
            "message": self.message,
            "fix": self.fix,
        }


class RolloutFailed(OperationFailed):
    """The environment did not become ready; carries the checks as they were last seen."""

    def __init__(self, message: str, checks: tuple[Check, ...]) -> None:
        super().__init__(message)
        self.checks = checks


def _secret_fix(env: str, message: str) -> str:
    ns = namespace_of(env)
    if "AADSTS70021" in message:
        return (
            f"the federated credential does not match: its issuer must be the cluster's OIDC issuer and its subject "
            f"`system:serviceaccount:{ns}:iots6-secrets`; run `iotctl deploy aks --env {env} --check`"
        )
    if "AADSTS700016" in message or "AADSTS700213" in message:
        return f"the client id on service account `{ns}/iots6-secrets` is not the environment identity's; re-apply"
    if "ForbiddenByRbac" in message or "403" in message or "Forbidden" in message:
        return "grant the environment identity `Key Vault Secrets User` on the vault (infra/terraform/aks/environment)"
    if "SecretNotFound" in message or "not found" in message.lower():
        return f"seed the missing secrets: `iotctl secrets seed --env {env}`"
    return f"see `kubectl -n {ns} describe externalsecret` for the full story"


def _pod_fix(env: str, reason: str) -> str:
    if reason in ("ImagePullBackOff", "ErrImagePull"):
        return "the image is not in the registry (or AcrPull is missing): build and push it, see docs/deploy-aks.md"
    if reason == "CreateContainerConfigError":
        return "a Secret the pod mounts does not exist yet: check the ExternalSecrets above"
    return f"read the container's logs: `kubectl -n {namespace_of(env)} logs <pod> --previous`"


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in _conditions(obj) if c.get("type") == "Ready"), None)


def _application(cluster: Cluster, env: str) -> Check:
    name = application_of(env)
    what = f"Application {ARGOCD_NAMESPACE}/{name}"
    app = cluster.get(*APPLICATION, name=name, namespace=ARGOCD_NAMESPACE)
    if app is None:
        return Check(what, False, "Missing", "ArgoCD has not generated it yet", "check the ApplicationSet `iots6`")
    status = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status", "Unknown")
    health = (status.get("health") or {}).get("status", "Unknown")
    state = f"{sync}/{health}"
    errors = [c for c in status.get("conditions") or [] if str(c.get("type", "")).endswith("Error")]
    operation = status.get("operationState") or {}
    if operation.get("phase") in ("Failed", "Error"):
        results = (operation.get("syncResult") or {}).get("resources") or []
        # A failed hook (the migration Job) explains the resources that then failed to apply: name it first.
        failed = next((r for r in results if r.get("hookPhase") in ("Failed", "Error")), None) or next(
            (r for r in results if r.get("status") == "SyncFailed"), None
        )
        message = (
            f"{failed.get('kind')}/{failed.get('name')}: {failed.get('message', '')}"
            if failed
            else operation.get("message", "")
        )
        return Check(what, False, f"Sync{operation['phase']}", message, "fix the manifest or values and push", True)
    if errors:
        return Check(what, False, errors[0]["type"], errors[0].get("message", ""), "see the condition's message")
    if sync == "Synced" and health == "Healthy":
        return Check(what, True, state)
    degraded = next(
        (r for r in status.get("resources") or [] if (r.get("health") or {}).get("status") == "Degraded"), None
    )
    if degraded:
        message = f"{degraded.get('kind')}/{degraded.get('name')}: {(degraded.get('health') or {}).get('message', '')}"
        return Check(what, False, state, message.strip(": "), "see the pods below")
    return Check(what, False, state, (status.get("health") or {}).get("message", ""))


def _secret_store(cluster: Cluster, env: str) -> Check:
    ns = namespace_of(env)
    what = f"SecretStore {ns}/{SECRET_STORE_NAME}"
    store = cluster.get(*SECRET_STORE, name=SECRET_STORE_NAME, namespace=ns)
    if store is None:
        return Check(what, False, "Missing", "not created yet", "wait for the Application's first sync")
    ready = _ready_condition(store)
    if ready and ready.get("status") == "True":
        return Check(what, True, "Valid")
    message = (ready or {}).get("message", "no status yet")
    return Check(
        what, False, (ready or {}).get("reason", "Pending"), message, _secret_fix(env, message) if ready else ""
    )


def _external_secrets(cluster: Cluster, env: str) -> list[Check]:
    ns = namespace_of(env)
    checks = []
    for es in sorted(cluster.list(*EXTERNAL_SECRET, namespace=ns), key=lambda o: o["metadata"]["name"]):
        what = f"ExternalSecret {ns}/{es['metadata']['name']}"
        ready = _ready_condition(es)
        if ready and ready.get("status") == "True":
            checks.append(Check(what, True, ready.get("reason", "SecretSynced")))
            continue
        message = (ready or {}).get("message", "no status yet")
        fix = _secret_fix(env, message) if ready else ""
        checks.append(Check(what, False, (ready or {}).get("reason", "Pending"), message, fix))
    return checks


def _pods(cluster: Cluster, env: str) -> list[Check]:
    ns = namespace_of(env)
    checks = []
    for pod in cluster.list(*POD, namespace=ns):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for cs in statuses:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in STUCK_POD_REASONS:
                what = f"Pod {ns}/{pod['metadata']['name']} ({cs.get('name')})"
                checks.append(Check(what, False, reason, waiting.get("message", ""), _pod_fix(env, reason)))
                break
    return checks


def observe(cluster: Cluster, env: str) -> tuple[Check, ...]:
    """One look at everything the environment's rollout depends on."""
    return (
        _application(cluster, env),
        _secret_store(cluster, env),
        *_external_secrets(cluster, env),
        *_pods(cluster, env),
    )


def wait(
    cluster: Cluster,
    env: str,
    timeout_s: float,
    poll_s: float = 5.0,
    on_change: Callable[[tuple[Check, ...]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Check, ...]:
    """Poll until every check is ready; raise :class:`RolloutFailed` naming the first failing check and its fix."""
    deadline = clock() + timeout_s
    last: tuple[Check, ...] | None = None
    while True:
        checks = observe(cluster, env)
        if checks != last and on_change is not None:
            on_change(checks)
        last = checks
        failing = [c for c in checks if not c.ready]
        if not failing:
            return checks
        terminal = next((c for c in failing if c.terminal), None)
        if terminal is not None or clock() >= deadline:
            first = terminal or _most_telling(failing)
            detail = f" ({first.message})" if first.message else ""
            fix = f"; {first.fix}" if first.fix else ""
            when = "failed" if terminal else f"is not ready after {int(timeout_s)} s"
            raise RolloutFailed(f"environment `{env}` {when}: {first.what} is {first.state}{detail}{fix}.", checks)
        sleep(poll_s)


def _most_telling(failing: list[Check]) -> Check:
    """The check whose fix explains the rest: a secret or pod error before the Application's summary of it."""
    for check in failing:
        if check.fix and not check.what.startswith("Application"):
            return check
    return failing[0]
