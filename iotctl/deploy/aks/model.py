"""The AKS deployment's data: the request, the hooks the CLI draws, the on-disk layout, kubeconfig and backend
files, and the small JSON helpers the steps share."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.deploy import identity, rollout
from iotctl.deploy.cluster import Cluster
from iotctl.errors import InvalidInput, MissingDependency, OperationFailed
from iotctl.secretfiles import write_secret

ENVIRONMENTS = ("dev", "staging", "prod")
PLATFORM_ROOT = "aks/platform"
ENVIRONMENT_ROOT = "aks/environment"
GITOPS_RELEASE = "iots6-gitops"
APPLICATIONSET = ("argoproj.io/v1alpha1", "ApplicationSet")
APPLICATIONSET_NAME = "iots6"
METRICS_CONFIGMAP = "ama-metrics-settings-configmap"
METRICS_REGEX = "iots6-.*"
BROKER_PORT = 8883
#: The chart's images built from services/Dockerfile: values key -> Dockerfile target.
BUILT_IMAGES = {"ingest": "ingest", "configServer": "config-server", "migrate": "migrate"}
PACKAGE_REPO = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class AksRequest:
    """What the operator asks for (flags and IOTCTL_* variables); None: the remembered value."""

    env: str
    location: str | None = None
    allow_cidrs: tuple[str, ...] = ()
    repo_url: str | None = None
    revision: str | None = None
    broker_host: str | None = None
    config_host: str | None = None
    backend_config: Path | None = None
    chart_mirror: str | None = None
    timeout_s: float = 1200.0
    #: This machine's own path to the environment's database (a port-forward, a VPN), for device provisioning.
    database_url: str | None = None


@dataclass
class Hooks:
    """How the library talks to the operator while it works (the CLI implements these)."""

    #: (question, detail lines) -> go ahead? Asked before every apply and before prod's sync.
    confirm: Callable[[str, list[str]], bool] = lambda _q, _d: False
    #: One line per step ("terraform: planning aks/platform").
    step: Callable[[str], None] = lambda _line: None
    #: The rollout checks whenever they change.
    checks: Callable[[tuple[rollout.Check, ...]], None] = lambda _checks: None
    #: Destroy only: (prompt, what goes) -> the text the operator typed (it must be the environment's name).
    type_name: Callable[[str, list[str]], str] = lambda _prompt, _lines: ""


@dataclass(frozen=True)
class ImageCheck:
    component: str
    reference: str
    state: str  # present | missing | unpinned | external
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"component": self.component, "reference": self.reference, "state": self.state, "fix": self.fix}


class ImagesMissing(OperationFailed):
    def __init__(self, message: str, images: tuple[ImageCheck, ...]) -> None:
        super().__init__(message)
        self.images = images


class IdentityBroken(OperationFailed):
    def __init__(self, message: str, findings: list[identity.Finding]) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass(frozen=True)
class Layout:
    """Where the AKS deployment keeps its working data under the state directory (all private)."""

    state_dir: Path

    @property
    def base(self) -> Path:
        return Path(self.state_dir) / "deploy" / "aks"

    @property
    def settings_file(self) -> Path:
        return self.base / "settings.json"

    @property
    def platform_dir(self) -> Path:
        return self.base / "platform"

    def env_dir(self, env: str) -> Path:
        return self.base / "env" / env

    def record(self, env: str) -> Path:
        return self.env_dir(env) / "deployment.json"

    @property
    def kubeconfig(self) -> Path:
        return self.base / "kubeconfig"

    @property
    def charts_dir(self) -> Path:
        return self.base / "charts"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"`{path}` cannot be read ({exc}); fix or delete it.") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_secret(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def repo_root() -> Path:
    """The checkout whose ``infra/`` is deployed: the current directory's, else the one iotctl runs from."""
    for candidate in (Path.cwd(), PACKAGE_REPO):
        if (candidate / "infra" / "terraform" / "aks").is_dir() and (candidate / "infra" / "argocd").is_dir():
            return candidate
    raise MissingDependency(
        "`infra/terraform/aks` is not here; run iotctl from a checkout of your fork of the repository (infra/ is "
        "not installed with the package)."
    )


def connect_cluster(kubeconfig: Path) -> Cluster:
    """The cluster behind ``kubeconfig`` (the one boundary tests replace with FakeKubernetes)."""
    from iotctl.deploy.cluster import KubernetesCluster

    return KubernetesCluster(kubeconfig)


def write_kubeconfig(path: Path, cluster_name: str, server: str, ca_data: str, token: str) -> Path:
    """A kubeconfig with the operator's Entra ID token (valid about an hour), written 0600."""
    import yaml

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "iotctl-entra-id", "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "iotctl-entra-id"}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    return write_secret(path, "# Written by iotctl; the token expires within about an hour.\n" + yaml.safe_dump(config))


def parse_backend_config(path: Path) -> dict[str, str]:
    """``key = "value"`` lines of a backend.hcl (as infra/terraform/aks/backend.hcl.example), comments allowed."""
    import re

    settings: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InvalidInput(f"backend config `{path}` cannot be read ({exc}); copy backend.hcl.example.") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r'([a-z_]+)\s*=\s*(?:"([^"]*)"|(true|false))', text)
        if not match:
            raise InvalidInput(f'backend config `{path}` line {number} is not `key = "value"` or `key = true`; fix it.')
        settings[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
    return settings


def git_origin(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
