"""The application bundle: the platform's wheel (``iots6-platform``: the services and ``iots6-migrate``) plus every
dependency's wheel for one host platform, in one tar. The host never gets the operator's CLI.

The playbook (role ``iots6_app``) copies the bundle to the host and installs it offline into a virtualenv with
``pip install --no-index --require-hashes -r requirements.txt``. Why a bundle rather than ``pip install`` on the
host: the host needs no route to PyPI, it runs exactly the versions resolved here (pinned to this controller's
installed versions, so what was tested is what runs), every wheel is checked against its SHA-256, and the same
path serves x86_64 and aarch64 hosts (``pip download --platform``).

The tar is byte-for-byte reproducible (sorted members, fixed times and owners; hatchling builds reproducible
wheels), so re-deploying an unchanged tree copies nothing and reinstalls nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from iotctl.errors import InvalidInput, MissingDependency, NotFound, OperationFailed

PROJECT_NAME = "iots6-platform"
_WHEEL_PREFIX = PROJECT_NAME.replace("-", "_")
# Wheels built for glibc 2.28 or older run on every supported host (Debian 12: 2.36, Ubuntu 24.04: 2.39).
GLIBC_FLOOR = (2, 28)
MACHINES = ("x86_64", "aarch64")
# Dependencies known to publish only a source distribution: built into a wheel before resolving, because with the
# controller's pins as constraints pip reports them as a conflict (ResolutionImpossible), not as "No matching
# distribution found", so _download's fallback cannot name them.
SDIST_ONLY: tuple[str, ...] = ()
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class Platform:
    """What a wheel must fit on a host: CPython major.minor and the CPU architecture (``uname -m``)."""

    python: str  # "3.11"
    machine: str  # "x86_64" or "aarch64"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d{1,2}", self.python):
            raise InvalidInput(f"Python version `{self.python}` is not major.minor; pass e.g. 3.11.")
        if self.machine not in MACHINES:
            raise InvalidInput(
                f"CPU architecture `{self.machine}` is not supported; the platform runs on {' or '.join(MACHINES)}."
            )

    @property
    def tag(self) -> str:
        """cp311 for 3.11."""
        return "cp" + self.python.replace(".", "")

    @property
    def key(self) -> str:
        """The key of ``iots6_app_bundles``: ``cp311-x86_64``."""
        return f"{self.tag}-{self.machine}"

    def pip_platforms(self) -> list[str]:
        """Every manylinux tag a wheel may carry to run on this host (pip does not expand them itself)."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(GLIBC_FLOOR[1], 16, -1)]
        tags.append(f"manylinux2014_{self.machine}")
        if self.machine == "x86_64":
            tags += [f"manylinux_2_{minor}_x86_64" for minor in (12, 5)] + ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return tags


def project_dir() -> Path:
    """The platform's source tree (``services/`` of a clone), which the bundle's wheel is built from."""
    import iots6_platform

    root = Path(iots6_platform.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise NotFound(
            f"The platform's source tree was not found above `{Path(iots6_platform.__file__).parent}`; run iotctl "
            "from a clone of the repository (`make install`) to deploy."
        )
    return root


class _PipFailed(OperationFailed):
    def __init__(self, message: str, stderr: str):
        super().__init__(message)
        self.stderr = stderr


def _pip(args: list[str], what: str) -> None:
    try:
        subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise MissingDependency(
            f"`{sys.executable} -m pip` cannot run; install pip into iotctl's environment."
        ) from None
    except subprocess.CalledProcessError as exc:
        lines = [line for line in (exc.stderr or "").splitlines() if line.startswith("ERROR")] or (
            exc.stderr or exc.stdout or "no output"
        ).strip().splitlines()[-1:]
        raise _PipFailed(f"{what} failed: {' '.join(lines)}; check the message and re-run.", exc.stderr or "") from None


_NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")


def _download(args: list[str], own_wheel: Path, local: Path, platform: Platform) -> None:
    """``pip download`` of the dependency closure. A dependency published only as a source distribution (e.g.
    python-terraform) is built into a wheel here once; a pure-Python wheel fits every host, anything else stops
    with an error naming it."""
    for _ in range(10):
        try:
            _pip(
                [*args, "--find-links", str(local), str(own_wheel)],
                f"Downloading the dependencies' wheels for {platform.key}",
            )
            return
        except _PipFailed as exc:
            missing = _NO_WHEEL.search(exc.stderr)
            if not missing:
                raise
            requirement = missing.group(1).rstrip(")")
            before = set(local.glob("*.whl"))
            _pip(
                ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(local), requirement],
                f"Building a wheel of `{requirement}`",
            )
            built = set(local.glob("*.whl")) - before
            if not built or not all(w.name.endswith("-none-any.whl") for w in built):
                raise OperationFailed(
                    f"`{requirement}` has no wheel for {platform.key} and is not pure Python, so it cannot be built "
                    "here for the host; pin a version that publishes one."
                ) from None
    raise OperationFailed(f"Too many dependencies without wheels for {platform.key}; check pip's output.")


def controller_pins(exclude: tuple[str, ...] = (PROJECT_NAME,)) -> list[str]:
    """``name==version`` for every distribution installed next to iotctl (pip constraints)."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name and name.lower() not in exclude:
            pins[name.lower()] = f"{name}=={dist.version}"
    return [pins[k] for k in sorted(pins)]


def _deterministic_tar(files: list[Path], extra: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = [(p.name, p.read_bytes()) for p in files] + list(extra.items())
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_bundle(
    platform: Platform, dest_dir: Path, source: Path | None = None, pin_to_controller: bool = True
) -> Path:
    """Build ``<dest_dir>/iots6-app-<platform.key>.tar``; returns its path (rewritten only when it changed)."""
    source = project_dir() if source is None else Path(source)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iots6-bundle-") as tmp:
        wheelhouse = Path(tmp) / "wheels"
        build = ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse)]
        if importlib.util.find_spec("hatchling") is not None:  # skip making an isolated build environment
            build.append("--no-build-isolation")
        _pip([*build, str(source)], "Building the platform's wheel")
        own = sorted(wheelhouse.glob(f"{_WHEEL_PREFIX}-*.whl"))
        if len(own) != 1:
            raise OperationFailed(
                f"Building the platform's wheel left {len(own)} wheels in `{wheelhouse}`; expected one."
            )
        args = ["download", "--quiet", "--only-binary=:all:", "--dest", str(wheelhouse)]
        for tag in platform.pip_platforms():
            args += ["--platform", tag]
        args += ["--python-version", platform.python, "--implementation", "cp", "--abi", platform.tag]
        if pin_to_controller:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("\n".join(controller_pins()) + "\n")
            args += ["--constraint", str(constraints)]
        # Wheels built here from source distributions, kept next to the bundles so the next build finds them.
        local = dest_dir / "built-wheels"
        local.mkdir(exist_ok=True)
        pins = {p.split("==")[0].lower(): p for p in controller_pins()}
        for name in SDIST_ONLY:
            requirement = pins.get(name, name)
            version = requirement.partition("==")[2] or "*"
            if not any(local.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
                _pip(
                    ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(local), requirement],
                    f"Building a wheel of `{requirement}`",
                )
        _download(args, own[0], local, platform)
        for built in local.glob("*.whl"):  # pip download copies found-links wheels only when they are needed
            if not (wheelhouse / built.name).exists():
                shutil.copy2(built, wheelhouse / built.name)
        wheels = sorted(wheelhouse.glob("*.whl"))
        lines = []
        for wheel in wheels:
            match = _WHEEL_NAME.match(wheel.name)
            if not match:
                raise OperationFailed(f"Wheel file name `{wheel.name}` is not understood; report this.")
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{match['name']}=={match['version']} --hash=sha256:{digest}")
        data = _deterministic_tar(wheels, {"requirements.txt": ("\n".join(lines) + "\n").encode()})
    target = dest_dir / f"iots6-app-{platform.key}.tar"
    if not (target.exists() and target.read_bytes() == data):
        tmp_target = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp_target.write_bytes(data)
        os.replace(tmp_target, target)
    return target
