"""What every local stack offers the CLI: one interface (:class:`Stack`) and one report (:class:`StackReport`).

Two stacks implement it: the native one (``iotctl.stack.native.NativeStack``: Mosquitto, PostgreSQL and the
services as processes under the state directory) and the Docker Compose one (``iotctl.stack.compose.ComposeStack``
over ``iotctl.stack.docker.DockerStack``).  ``iotctl.stack.local_stack`` picks one from the settings; the CLI's
``stack`` verbs only see this interface, so they behave the same on either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from iotctl.errors import InvalidInput, Unreachable

#: Component states. ``done``: a one-shot job (the Docker stack's migrations) that finished successfully.
RUNNING, STOPPED, ABSENT, DONE = "running", "stopped", "absent", "done"

Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """The default progress callback: say nothing."""


@dataclass
class Component:
    name: str
    state: str  # RUNNING | STOPPED | ABSENT | DONE
    pid: int | None = None
    endpoint: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid, "endpoint": self.endpoint, "detail": self.detail}


@dataclass
class StackReport:
    """What the stack looks like now, plus what this call changed."""

    state_dir: Path  # the native stack's state directory, or the Docker stack's directory
    engine: str | None  # system | embedded | docker (None: the native stack never came up)
    components: list[Component]
    endpoints: dict[str, Any]
    credentials: dict[str, Any]
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    wiped: list[str] = field(default_factory=list)
    kind: str = "native"  # native | docker

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    @property
    def down(self) -> list[str]:
        """Components that should run but do not (absent optional services and finished jobs are not down)."""
        return [c.name for c in self.components if c.state == STOPPED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state_dir": str(self.state_dir),
            "engine": self.engine,
            "components": {c.name: c.to_dict() for c in self.components},
            "endpoints": self.endpoints,
            "credentials": self.credentials,
            "started": self.started,
            "stopped": self.stopped,
            "wiped": self.wiped,
        }


class Stack(Protocol):
    """A local stack as the ``iotctl stack`` verbs drive it."""

    kind: str
    progress: Progress

    @property
    def location(self) -> Path:
        """The directory holding everything of this stack."""
        ...

    @property
    def reset_question(self) -> str:
        """What ``down --reset`` asks before it deletes data."""
        ...

    def up(self) -> StackReport:
        """Start whatever is down (idempotent); the report lists what was started."""
        ...

    def down(self, reset: bool = False) -> StackReport:
        """Stop everything; with ``reset`` also delete the data; the report lists what was stopped and wiped."""
        ...

    def status(self) -> StackReport:
        """The live state of every component."""
        ...

    def check(self, report: StackReport | None = None) -> StackReport:
        """``status`` that raises Unreachable when a component that should run does not."""
        ...

    def logs(self, component: str | None = None, lines: int = 200) -> str:
        """The last ``lines`` lines of one component's log, or of each."""
        ...

    def endpoints(self) -> dict[str, Any]: ...

    def credentials(self) -> dict[str, Any]: ...

    def secret_file(self, name: str) -> Path:
        """Where secret ``name`` (``operator``, ``db``, ``admin-token``, ``mqtt-admin``) is kept."""
        ...


def check_report(report: StackReport) -> StackReport:
    """Raise Unreachable naming the components that should run but do not (the shared ``check``)."""
    if report.down:
        raise Unreachable(
            f"Stack component(s) `{'`, `'.join(report.down)}` not running in `{report.state_dir}`; "
            "start them with `iotctl stack up`."
        )
    return report


def confirm_needed(reset: bool, yes: bool, interactive: bool) -> bool:
    """Whether ``down --reset`` must ask first. Non-interactive callers must pass --yes."""
    if not reset or yes:
        return False
    if not interactive:
        raise InvalidInput("`stack down --reset` deletes all stack data; pass --yes to confirm when not on a TTY.")
    return True
