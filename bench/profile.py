"""Sample the ingest process with py-spy (attached by pid) and summarise where its CPU goes."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

#: Inclusive shares reported for these frames (function name as py-spy prints it, file suffix).
STAGES = {
    "network thread: wire reader (socket read, packet decode, callbacks)": (
        "Consumer.read",
        "ingest/wire.py",
    ),
    "on_message: parse + validate + append (network thread)": ("Ingestor._on_message", "ingest/service.py"),
    "contract.parse_message": ("parse_message", "services/iots6_platform/core/contract.py"),
    "json.loads": ("loads", "json/__init__.py"),
    "flush (main thread)": ("Ingestor.flush", "ingest/service.py"),
    "store.write: COPY + INSERT + UPDATE devices + commit": ("Store.write", "ingest/store.py"),
    "Consumer.ack (PUBACKs after commit)": ("Consumer.ack", "ingest/wire.py"),
}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, rate: int = 200):
        binary = py_spy()
        if binary is None:
            raise RuntimeError("`py-spy` not found; install the dev extra (pip install -e '.[dev]').")
        self.out = Path(tempfile.mkstemp(prefix="iotctl-bench-pyspy-", suffix=".txt")[1])
        self.proc = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nolineno",
                "--threads",
                "--nonblocking",
                "--output",
                str(self.out),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def report(self, top: int = 15) -> dict:
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        self.out.unlink(missing_ok=True)
        return summarise(text, top)


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = _FRAME.match(part.strip())
        frames.append((match["func"], match["file"]) if match else (part.strip(), ""))
    return frames


def summarise(raw: str, top: int = 15) -> dict:
    """Self time by function, inclusive time of the pipeline stages, and samples per thread (on CPU only)."""
    total = 0
    leaf: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = _frames(stack)
        thread = frames[0][0].partition(": ")[2] if frames[0][0].startswith("thread ") else "?"
        if thread.startswith("ingest-mqtt"):
            thread = "network thread (receive, decode, parse into the batch)"
        elif thread == "MainThread":
            thread = "main thread (flush: COPY, commit, ack)"
        threads[thread] += samples
        func, file = frames[-1]
        leaf[f"{func} ({_short(file)})"] += samples
        seen = set()
        for label, (name, suffix) in STAGES.items():
            if label not in seen and any(f == name and file.endswith(suffix) for f, file in frames):
                stages[label] += samples
                seen.add(label)
    share = (lambda k: round(100.0 * k / total, 1)) if total else (lambda k: 0.0)
    return {
        "samples_on_cpu": total,
        "threads_pct": {k: share(v) for k, v in threads.most_common()},
        "stages_inclusive_pct": {k: share(stages[k]) for k in STAGES},
        "top_self_pct": {k: share(v) for k, v in leaf.most_common(top)},
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
