"""Run the platform's playbook (``infra/ansible/site.yml``) through ansible-runner.

``run_playbook(inventory, extravars=...)`` converges the hosts of group ``iots6`` and returns a
:class:`PlaybookResult` (per-host ok/changed/failed counts, the failed tasks, the duration). A run that fails raises
:class:`PlaybookFailed` (or :class:`HostUnreachable` when a host could not be reached), each carrying the result;
a missing ansible-runner or ``ansible-playbook`` raises :class:`~iotctl.errors.MissingDependency`.

``probe_platforms(inventory)`` asks each host for its Python version and CPU architecture (the ``setup`` module),
which is what :func:`iotctl.deploy.bundle.build_bundle` needs; ``converge`` does both and passes the bundles in.

Secrets: extravars carry only paths (``iots6_secrets_dir``); the tasks that read secret contents are ``no_log``,
and ansible-runner is told not to write the environment or extravars to disk. Artifacts (the event log) go to a
temporary directory that is removed unless ``artifact_dir`` is given.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotctl.errors import InvalidInput, MissingDependency, NotFound, OperationFailed, Unreachable

PLAYBOOK = "site.yml"
HOST_GROUP = "iots6"


@dataclass(frozen=True)
class HostStats:
    """Ansible's recap for one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class TaskFailure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass(frozen=True)
class TaskEvent:
    """Progress: one task finished on one host (status: ok, changed, failed, skipped, unreachable)."""

    host: str
    task: str
    status: str


@dataclass(frozen=True)
class PlaybookResult:
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: tuple[TaskFailure, ...] = ()
    elapsed_s: float = 0.0
    error: str = ""  # Ansible's own error line when it stopped before any task (a syntax error, a bad inventory)

    @property
    def changed(self) -> int:
        """Tasks that changed something, summed over the hosts (0 on an idempotent re-run)."""
        return sum(h.changed for h in self.hosts.values())

    @property
    def succeeded(self) -> bool:
        return self.status == "successful" and self.rc == 0 and not self.failures

    def as_dict(self) -> dict[str, Any]:
        """For ``--json`` output (holds no secret: only counts, task names and Ansible's messages)."""
        return {
            "status": self.status,
            "rc": self.rc,
            "changed": self.changed,
            "elapsed_s": round(self.elapsed_s, 1),
            "hosts": {name: vars(stats) for name, stats in self.hosts.items()},
            "failures": [vars(f) for f in self.failures],
        }


class PlaybookFailed(OperationFailed):
    """The playbook ran and a task failed (or the run timed out); ``result`` has the details."""

    def __init__(self, message: str, result: PlaybookResult):
        super().__init__(message)
        self.result = result


class HostUnreachable(Unreachable):
    """Ansible could not reach a host (SSH down, wrong address or key); ``result`` has the details."""

    def __init__(self, message: str, result: PlaybookResult):
        super().__init__(message)
        self.result = result


def playbook_dir() -> Path:
    """``infra/ansible`` of the source tree iotctl runs from."""
    path = Path(__file__).resolve().parents[2] / "infra" / "ansible"
    if not (path / PLAYBOOK).is_file():
        raise NotFound(
            f"The playbook `{path / PLAYBOOK}` was not found; run iotctl from a clone of the repository "
            "(pip install -e .) to deploy."
        )
    return path


def _ansible_env() -> dict[str, str]:
    """PATH with ``ansible-playbook``: next to this Python (a venv run without activation) or on PATH."""
    try:
        import ansible_runner  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "`ansible-runner` is not installed; install it with pip install 'iotctl[ansible]'."
        ) from None
    path = os.environ.get("PATH", "")
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        path = f"{here}{os.pathsep}{path}"
    elif not shutil.which("ansible-playbook"):
        raise MissingDependency("`ansible-playbook` not found on PATH; install it with pip install 'iotctl[ansible]'.")
    return {"PATH": path, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def _check_inventory(inventory: Path | Mapping[str, Any]) -> str | dict[str, Any]:
    if isinstance(inventory, Mapping):
        return dict(inventory)
    path = Path(inventory)
    if not path.exists():
        raise InvalidInput(
            f"Inventory `{path}` does not exist; pass an inventory file that lists group `{HOST_GROUP}`."
        )
    return str(path.resolve())


def _message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not msg and res.get("results"):  # a loop: the first failed item's message
        failed = [r for r in res["results"] if isinstance(r, Mapping) and r.get("failed")]
        if failed:
            msg = _message(failed[0])
    return " ".join(str(msg).split())[:500] or "no message"


def _changed(event: Mapping[str, Any]) -> bool:
    """Whether a finished task changed something. A no_log task's result is censored down to one key, so its
    `changed` survives only in the line Ansible printed for it (``changed: [host]``)."""
    res = event.get("event_data", {}).get("res", {})
    if "changed" in res:
        return bool(res["changed"])
    return any(line.startswith("changed: [") for line in str(event.get("stdout", "")).splitlines())


def _error_line(runner: Any) -> str:
    """The first line of Ansible's output that reports an error (with the line after it: the location)."""
    try:
        with runner.stdout as output:
            lines = output.read().splitlines()
    except (OSError, AttributeError):
        return ""
    for i, line in enumerate(lines):
        if line.startswith(("[ERROR]", "ERROR!")):
            detail = " ".join(part.strip() for part in lines[i : i + 2] if part.strip())
            return " ".join(detail.split())[:500]
    return ""


def _run(
    *,
    inventory: Path | Mapping[str, Any],
    project: Path,
    artifact_dir: Path | None,
    timeout: int | None,
    on_event: Callable[[TaskEvent], None] | None,
    **kwargs: Any,
) -> tuple[PlaybookResult, list[dict[str, Any]]]:
    """One ansible-runner invocation; returns the result and the events of finished tasks."""
    import ansible_runner

    envvars = _ansible_env()
    envvars["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    inv = _check_inventory(inventory)
    finished: list[dict[str, Any]] = []
    statuses = {
        "runner_on_ok": "ok",
        "runner_on_failed": "failed",
        "runner_on_skipped": "skipped",
        "runner_on_unreachable": "unreachable",
    }

    changed_items: set[tuple[str, str]] = set()  # (host, task uuid) of loops with a changed item

    def handler(event: dict[str, Any]) -> bool:
        kind = event.get("event")
        data = event.get("event_data", {})
        if kind == "runner_item_on_ok" and _changed(event):
            changed_items.add((data.get("host", ""), data.get("task_uuid", "")))
        if kind in statuses:
            finished.append(event)
            if on_event is not None:
                status = statuses[kind]
                if status == "ok" and (
                    _changed(event) or (data.get("host", ""), data.get("task_uuid", "")) in changed_items
                ):
                    status = "changed"
                on_event(TaskEvent(str(data.get("host", "")), str(data.get("task", "")), status))
        return True  # keep the event: ansible-runner computes the recap (stats) from the stored events

    private = Path(tempfile.mkdtemp(prefix="iotctl-ansible-"))
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            artifact_dir=str(artifact_dir) if artifact_dir else None,
            project_dir=str(project),
            inventory=inv,
            envvars=envvars,
            quiet=True,
            suppress_env_files=True,
            event_handler=handler,
            timeout=timeout,
            **kwargs,
        )
        stats = runner.stats or {}
        hosts: dict[str, HostStats] = {}
        names = set().union(*(stats.get(k, {}) for k in ("ok", "changed", "failures", "dark", "skipped", "processed")))
        for name in sorted(names):
            hosts[name] = HostStats(
                ok=stats.get("ok", {}).get(name, 0),
                changed=stats.get("changed", {}).get(name, 0),
                failed=stats.get("failures", {}).get(name, 0),
                unreachable=stats.get("dark", {}).get(name, 0),
                skipped=stats.get("skipped", {}).get(name, 0),
                rescued=stats.get("rescued", {}).get(name, 0),
                ignored=stats.get("ignored", {}).get(name, 0),
            )
        failures = []
        for event in finished:
            data = event.get("event_data", {})
            if event["event"] == "runner_on_failed" and not data.get("ignore_errors"):
                failures.append(TaskFailure(data.get("host", ""), data.get("task", ""), _message(data.get("res", {}))))
            elif event["event"] == "runner_on_unreachable":
                failures.append(
                    TaskFailure(data.get("host", ""), data.get("task", ""), _message(data.get("res", {})), True)
                )
        result = PlaybookResult(
            runner.status, runner.rc, hosts, tuple(failures), time.monotonic() - started, _error_line(runner)
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return result, finished


def _raise_for(result: PlaybookResult, what: str) -> None:
    if result.succeeded:
        return
    if result.status == "timeout":
        raise PlaybookFailed(f"{what} did not finish within the time limit; re-run it (it resumes safely).", result)
    unreachable = [f for f in result.failures if f.unreachable]
    if unreachable:
        f = unreachable[0]
        raise HostUnreachable(
            f"Host `{f.host}` is unreachable ({f.message}); check its address, SSH access and key, then re-run.",
            result,
        )
    if result.failures:
        f = result.failures[0]
        raise PlaybookFailed(f"{what} failed on `{f.host}` at task `{f.task}`: {f.message}", result)
    if result.error:
        raise PlaybookFailed(f"{what} stopped before running a task: {result.error}", result)
    raise PlaybookFailed(
        f"{what} ended with status `{result.status}` (rc {result.rc}) and no failed task; "
        "re-run with an artifact directory to see Ansible's output.",
        result,
    )


def run_playbook(
    inventory: Path | Mapping[str, Any],
    *,
    extravars: Mapping[str, Any] | None = None,
    playbook: str = PLAYBOOK,
    project: Path | None = None,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    timeout: int | None = None,
    artifact_dir: Path | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
) -> PlaybookResult:
    """Run ``playbook`` of ``infra/ansible`` against ``inventory`` (a file, or a dict in YAML-inventory shape).

    Raises :class:`PlaybookFailed` / :class:`HostUnreachable` (with ``.result``) when the run did not succeed.
    """
    project = playbook_dir() if project is None else Path(project)
    if not (project / playbook).is_file():
        raise NotFound(f"Playbook `{project / playbook}` does not exist; pass one of the playbooks in `{project}`.")
    cmdline = "--check --diff" if check else None
    result, _ = _run(
        inventory=inventory,
        project=project,
        artifact_dir=artifact_dir,
        timeout=timeout,
        on_event=on_event,
        playbook=playbook,
        extravars=dict(extravars or {}),
        limit=limit,
        tags=tags,
        cmdline=cmdline,
    )
    _raise_for(result, f"Playbook `{playbook}`")
    return result


def probe_platforms(
    inventory: Path | Mapping[str, Any], *, pattern: str = HOST_GROUP, timeout: int | None = 300
) -> dict[str, Any]:
    """Each host's :class:`~iotctl.deploy.bundle.Platform` (Python major.minor, CPU architecture)."""
    from iotctl.deploy.bundle import Platform

    result, events = _run(
        inventory=inventory,
        project=playbook_dir(),
        artifact_dir=None,
        timeout=timeout,
        on_event=None,
        module="ansible.builtin.setup",
        module_args="gather_subset=min",
        host_pattern=pattern,
    )
    _raise_for(result, "Probing the hosts")
    platforms: dict[str, Any] = {}
    for event in events:
        if event["event"] != "runner_on_ok":
            continue
        data = event["event_data"]
        facts = data.get("res", {}).get("ansible_facts", {})
        version = facts.get("ansible_python", {}).get("version", {})
        platforms[data["host"]] = Platform(
            f"{version.get('major')}.{version.get('minor')}", facts.get("ansible_architecture", "")
        )
    if not platforms:
        raise NotFound(
            f"The inventory has no host in `{pattern}`; list the hosts to configure under group `{HOST_GROUP}`."
        )
    return platforms


def converge(
    inventory: Path | Mapping[str, Any],
    *,
    secrets_dir: Path,
    bundle_dir: Path,
    extravars: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> PlaybookResult:
    """Probe the hosts, build one application bundle per platform, run the playbook with both passed in."""
    from iotctl.deploy.bundle import build_bundle

    platforms = probe_platforms(inventory)
    bundles = {p.key: str(build_bundle(p, bundle_dir)) for p in sorted(set(platforms.values()), key=str)}
    variables = {"iots6_secrets_dir": str(Path(secrets_dir).resolve()), "iots6_app_bundles": bundles}
    variables.update(extravars or {})
    return run_playbook(inventory, extravars=variables, **kwargs)
