"""Where everything of the native stack lives under the state directory (one definition, used everywhere).

::

    <state_dir>/
      stack.json              endpoints and component pids (0600)
      secrets/                0700; one 0600 file per password: operator, ingest, config, mqtt-admin, db, admin-token
      devices/<id>.json       0600; a provisioned device's credentials (MQTT password, config token)
      mosquitto/              mosquitto.conf, data/ (persistence, dynamic-security.json), mosquitto.log
      pki/                    the stack's CA and the broker's TLS certificate (only with a TLS listener)
      postgres/               the cluster (data/, postgres.log)
      logs/                   ingest.log, config-server.log
      run/                    pid files of the Python services
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "iots6"
DB_OWNER = "iots6"


@dataclass(frozen=True)
class StackLayout:
    state_dir: Path

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    def secret(self, name: str) -> Path:
        return self.secrets_dir / f"{name}.password"

    @property
    def devices_dir(self) -> Path:
        return self.state_dir / "devices"

    def device_file(self, device_id: str) -> Path:
        return self.devices_dir / f"{device_id}.json"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def mosquitto_dir(self) -> Path:
        return self.state_dir / "mosquitto"

    @property
    def postgres_dir(self) -> Path:
        """The cluster directory. As root it must be reachable by the `postgres` user; when the state dir is under
        a private home (e.g. /root), the cluster lives in /var/lib/iotctl/<hash> instead."""
        from iotctl.stack.postgres import reachable_by_postgres

        inside = self.state_dir / "postgres"
        if os.geteuid() != 0 or reachable_by_postgres(self.state_dir):
            return inside
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return Path("/var/lib/iotctl") / digest / "postgres"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"
