"""What the CLI writes never depends on the terminal's width when there is no terminal (issue #10, item 1).

A pipe or a file gets whole sentences and whole table rows, whatever `COLUMNS` says and however long the paths
are; a terminal gets tables fitted to its width, colour unless `NO_COLOR` is set, and no colour anywhere else.
Commands run here need no service: `stack status` of a stack never started, `stack down --reset` of a state dir
holding only files, `settings`, and a usage error.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app

# Any SGR escape: what a colour, bold or dim code starts with.
ESCAPE = "\x1b["
# A foreground/background colour code (30-37, 38;…, 39-47, 48;…, 90-97, 100-107) inside an SGR sequence.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


@pytest.fixture
def long_dir(tmp_path) -> Path:
    """A state dir whose path is over 200 characters: longer than any terminal line here."""
    path = tmp_path.joinpath(*[f"a-long-directory-name-{i:02d}" for i in range(9)], "state")
    assert len(str(path)) > 200
    return path


def invoke(*args: str, columns: int = 40, env: dict[str, str] | None = None):
    return CliRunner().invoke(
        app, list(args), env={"IOTCTL_CONFIG": "", "COLUMNS": str(columns), **(env or {})}, catch_exceptions=False
    )


def run(*args: str, columns: int = 40, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real entry point with stdout and stderr on pipes, as a script or a log collector sees it."""
    return subprocess.run(
        [sys.executable, "-c", "from iotctl.cli.main import run; run()", *args],
        env={**os.environ, "IOTCTL_CONFIG": "", "COLUMNS": str(columns), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _make_state(state: Path) -> None:
    for sub in ("logs", "run"):
        (state / sub).mkdir(parents=True)
        (state / sub / "x.log").write_text("x\n")


@pytest.mark.parametrize("columns", [40, 300])
def test_messages_with_a_long_path_stay_on_one_line(long_dir, columns):
    _make_state(long_dir)
    result = invoke("--state-dir", str(long_dir), "stack", "down", "--reset", "--yes", columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert f"stack: removed `{long_dir / 'logs'}`" in lines, result.stderr
    assert f"stack: removed `{long_dir}`" in lines, result.stderr
    assert "stopped: nothing (all stopped); data deleted" in lines, result.stderr


def test_messages_through_a_real_pipe_are_whole_and_plain(long_dir):
    _make_state(long_dir)
    result = run("--state-dir", str(long_dir), "stack", "down", "--reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"stack: removed `{long_dir / 'run'}`" in result.stderr.splitlines(), result.stderr
    assert ESCAPE not in result.stderr + result.stdout


@pytest.mark.parametrize("columns", [40, 300])
def test_tables_in_a_pipe_keep_every_column_and_cell_whole(long_dir, columns):
    result = invoke("--state-dir", str(long_dir), "stack", "status", columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"native stack in {long_dir} (engine: -)" in [line.strip() for line in lines], result.stdout
    rows = {line.split()[0]: line.split() for line in lines if line.strip().startswith(("mosquitto", "postgres"))}
    assert rows["mosquitto"][1:] == ["stopped", "-", "mqtt://127.0.0.1:18830"], result.stdout
    assert rows["postgres"][1:] == ["stopped", "-", "postgresql://iots6@127.0.0.1:15432/iots6"], result.stdout
    assert f"credentials: {long_dir / 'secrets'}" in lines, result.stdout

    table = invoke("settings", columns=columns)
    assert table.exit_code == 0, table.output
    state_row = next(line for line in table.stdout.splitlines() if "IOTCTL_STATE_DIR" in line)
    assert "native stack state and credentials" in state_row, table.stdout  # the doc cell, not folded


def test_usage_errors_in_a_pipe_are_one_plain_sentence():
    result = run("stack", "logs", "--lines", "many")
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error and "Invalid value for '--lines'" in error[0] and error[0].endswith("integer"), result.stderr
    assert "╭" not in result.stderr and ESCAPE not in result.stderr


def _on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it wrote, escapes included."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from iotctl.cli.main import run; run()", *args],
        env={**os.environ, "IOTCTL_CONFIG": "", "TERM": "xterm-256color", **env},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_tables_fitted_to_its_width_and_colour_unless_no_color(long_dir):
    text = _on_a_terminal("settings", env={"COLUMNS": "60", "NO_COLOR": ""})
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)
    assert "key" in plain and "IOTCTL_" in plain, plain
    assert max(len(line) for line in plain.replace("\r", "").splitlines()) <= 60, plain

    coloured = _on_a_terminal("--state-dir", str(long_dir), "stack", "status", env={"COLUMNS": "200", "NO_COLOR": ""})
    assert COLOUR.search(coloured), repr(coloured)  # `stopped` in red
    bare = _on_a_terminal("--state-dir", str(long_dir), "stack", "status", env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "stopped" in bare and not COLOUR.search(bare), repr(bare)
