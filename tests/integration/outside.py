"""Clients nobody on the project wrote, as an operator or a device would use them: ``mosquitto_pub`` and ``psql``.

Credentials go through the clients' own option files (``$XDG_CONFIG_HOME/mosquitto_pub``, ``PGPASSFILE``), never
the command line, so they stay out of the process list.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from iotctl.secretfiles import write_secret


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"`{tool}` not found; run `make install-system` (apt-get install {package}).")
    return found


def registered_device(broker, database, device_id: str) -> str:
    """A provisioned device (broker account + registry row) whose password the test holds. Returns it."""
    password = broker.add_device(device_id)
    with database.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES (%s)", (device_id,))
    return password


def mosquitto_pub(
    broker,
    username: str,
    password: str,
    topic: str,
    home: Path,
    *,
    message: str | None = None,
    file: Path | None = None,
    protocol: str = "mqttv5",
    qos: int = 1,
    debug: bool = False,
) -> subprocess.CompletedProcess:
    """One ``mosquitto_pub`` run as client ``username`` (QoS 1 waits for the PUBACK); returns its exit code and
    output."""
    binary = _require("mosquitto_pub", "mosquitto-clients")
    config = home / "mosquitto-client"
    config.mkdir(mode=0o700, exist_ok=True)
    write_secret(config / "mosquitto_pub", f"-u {username}\n-P {password}\n")
    # The broker admits a device only under its own client id (= username = device id).
    argv = [binary, "-h", broker.host, "-p", str(broker.port), "-i", username, "-V", protocol, "-q", str(qos)]
    argv += ["-t", topic]
    argv += ["-f", str(file)] if file is not None else ["-m", message or ""]
    if debug:
        argv.append("-d")
    return subprocess.run(
        argv,
        env={"XDG_CONFIG_HOME": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def psql(database, sql: str, home: Path) -> list[list[str]]:
    """Rows of ``sql`` run by ``psql`` as the database owner (unaligned, tab-separated, no headers)."""
    binary = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    if binary is None:
        _require("psql", "postgresql-client")
    server = database.pg.server
    passfile = write_secret(home / "pgpass", f"127.0.0.1:{server.port}:{database.name}:iots6:{database.password}\n")
    done = subprocess.run(
        [str(binary), "-h", "127.0.0.1", "-p", str(server.port), "-U", "iots6", "-d", database.name]
        + ["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env={"PGPASSFILE": str(passfile), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines() if line]
