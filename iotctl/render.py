"""The one place templates are rendered (Jinja2, files ending ``.j2`` under ``templates/``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

_REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_PACKAGED_TEMPLATES = Path(__file__).resolve().parent / "_templates"


def templates_dir() -> Path:
    return _REPO_TEMPLATES if _REPO_TEMPLATES.is_dir() else _PACKAGED_TEMPLATES


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **context: object) -> str:
    """Render ``templates/<name>`` (e.g. ``mosquitto/mosquitto.conf.j2``) with ``context``."""
    return _env().get_template(name).render(**context)
