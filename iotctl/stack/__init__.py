"""The local stacks: broker, database, ingest and config server on this machine, as processes (native) or as
Docker Compose services.  ``local_stack`` is the one place that picks one; both implement
``iotctl.stack.base.Stack``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iotctl.settings import Settings
    from iotctl.stack.base import Progress, Stack


def local_stack(settings: Settings, progress: Progress | None = None, docker: bool | None = None) -> Stack:
    """The stack of ``settings.state_dir``: Docker Compose when ``docker`` (default: the `docker` setting), else
    native processes."""
    if settings.docker if docker is None else docker:
        from iotctl.stack.compose import ComposeStack

        return ComposeStack(settings, progress)
    from iotctl.stack.native import NativeStack

    return NativeStack(settings, progress)
