"""How a broker and a database are reached: plain values, no iotctl imports, so anything may import them.

Which endpoints the CLI uses comes from the active environment (``iotctl.environments.mqtt_endpoint`` /
``db_endpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    username: str
    password: str = ""
    protocol: str = "5"  # or "3.1.1" (the embedded broker)
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's trust store
    env: str = ""  # the registered environment's name, for error messages; empty for the built-in stacks

    def __repr__(self) -> str:  # never print the password
        return f"MqttEndpoint({self.username}@{self.url} v{self.protocol})"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def where(self) -> str:
        """The broker, named for a message: "`mqtts://h:8883` of environment `prod`"."""
        return f"`{self.url}`" + (f" of environment `{self.env}`" if self.env else "")


@dataclass(frozen=True)
class DbEndpoint:
    url: str  # postgresql://user@host:port/db, without the password
    password: str | None = None
    env: str = ""  # as in MqttEndpoint

    def __repr__(self) -> str:
        return f"DbEndpoint({self.url})"
