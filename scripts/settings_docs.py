#!/usr/bin/env python3
"""Write the settings tables into the docs, from the one definition of each setting.

Each table sits between ``<!-- settings:NAME -->`` and ``<!-- /settings:NAME -->`` in a file under docs/, where
NAME is a platform program (``ingest``, ``config-server``, ``migrate``: iots6_platform.core.settings) or ``iotctl``
(the CLI's settings: iotctl.settings).  Each NAME appears in exactly one place.

    python scripts/settings_docs.py           # rewrite the tables
    python scripts/settings_docs.py --check   # exit 1 naming the stale files (tests/unit/test_settings_agree.py)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- settings:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /settings:(?P=name) -->)", re.S)


def tables() -> dict[str, str]:
    from iotctl.settings import markdown_table as iotctl_table
    from iots6_platform.core.settings import SERVICES, markdown_table

    return {**{name: markdown_table(cls) for name, cls in SERVICES.items()}, "iotctl": iotctl_table()}


def render(text: str, wanted: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked table regenerated, and the names it holds."""
    found: list[str] = []

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in wanted:
            raise SystemExit(f"unknown settings table `{name}`; use one of {', '.join(sorted(wanted))}.")
        found.append(name)
        return match.group(1) + wanted[name] + match.group(4)

    return BLOCK.sub(fill, text), found


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    wanted = tables()
    seen: dict[str, list[str]] = {}
    stale = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        new, found = render(text, wanted)
        for name in found:
            seen.setdefault(name, []).append(path.name)
        if new != text:
            stale.append(path.name)
            if not check:
                path.write_text(new)
    problems = [f"`{n}` is in {', '.join(seen.get(n, [])) or 'no doc'}" for n in wanted if len(seen.get(n, [])) != 1]
    if problems:
        sys.stderr.write(f"each settings table must be in exactly one doc: {'; '.join(problems)}.\n")
        return 1
    if check and stale:
        sys.stderr.write(f"settings tables are stale in {', '.join(stale)}; run `python scripts/settings_docs.py`.\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
