"""Terraform, driven through ``python-terraform`` (as the design asks), with plan → confirm → apply.

One :class:`TerraformRoot` is one root module applied for one environment: its own data directory (``TF_DATA_DIR``)
and its own state (a local file under the environment's directory, or the remote backend the operator chose), so
``dev`` and ``prod`` never share a plan, a state or a lock. The module tree (``source``: ``infra/terraform``, with the
shared modules the roots call by relative path) is staged into the environment's directory and a
``iotctl_backend_override.tf`` there picks the backend, so the repository or the installed package is never written
to and the modules need no backend block of their own. Variables travel in a 0600 ``-var-file``, never as ``-var`` on
a command line (the process list). ``destroy`` is ``plan -destroy`` + ``apply <plan>``: python-terraform's own
``destroy()`` passes ``-force``, which Terraform ≥ 0.15 rejects, and the plan lets the CLI show what would go.

Terraform's errors become iotctl's typed errors in :func:`_classify`: a missing binary, no Azure login, an
unreachable provider registry, or the first ``Error:`` line of anything else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotctl.errors import AuthRefused, IotctlError, MissingDependency, OperationFailed, Unreachable
from iotctl.secretfiles import write_secret

TERRAFORM_ENV = "IOTCTL_TERRAFORM"
# A flag without a value (`-auto-approve`); turned into python-terraform's IsFlagged when a command runs, so that
# importing this module does not import python-terraform.
_FLAG = object()
INSTALL_HINT = "install Terraform >= 1.11 (https://developer.hashicorp.com/terraform/install) or set IOTCTL_TERRAFORM"


@dataclass(frozen=True)
class ResourceChange:
    address: str
    action: str  # create | update | replace | delete | read

    def as_dict(self) -> dict[str, str]:
        return {"address": self.address, "action": self.action}


@dataclass(frozen=True)
class Plan:
    path: Path
    changes: tuple[ResourceChange, ...]
    destroy: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for change in self.changes:
            if change.action in counts:
                counts[change.action] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"destroy": self.destroy, "counts": self.counts(), "changes": [c.as_dict() for c in self.changes]}


@dataclass
class TerraformRoot:
    """The root module ``source/root`` applied with its own state and data under ``work_dir``."""

    source: Path
    root: str
    work_dir: Path
    variables: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "local"  # or "azurerm" (with backend_config: resource_group_name, storage_account_name, …)
    backend_config: Mapping[str, str] = field(default_factory=dict)
    binary: str | None = None
    #: Variable files inside the module (e.g. ``environments/prod.tfvars``), given before iotctl's own var file, so
    #: the values iotctl passes win.
    var_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.work_dir = Path(self.work_dir)
        self.binary = find_terraform(self.binary)
        if not (self.source / self.root).is_dir():
            raise OperationFailed(f"Terraform root `{self.source / self.root}` does not exist; reinstall iotctl.")

    @property
    def module_dir(self) -> Path:
        """Where terraform runs: the staged copy of the root module."""
        return self.work_dir / "src" / self.root

    def _stage(self) -> None:
        staged = self.work_dir / "src"
        lock = self.module_dir / ".terraform.lock.hcl"  # written by init: the provider versions this env selected
        kept = lock.read_bytes() if lock.exists() else None
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(
            self.source, staged, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfplan", "tests")
        )
        if kept is not None and not lock.exists():
            lock.write_bytes(kept)
        (self.module_dir / "iotctl_backend_override.tf").write_text(
            "# Written by iotctl: the backend of this environment's state.\n"
            f'terraform {{\n  backend "{self.backend}" {{}}\n}}\n'
        )

    # -- the commands ------------------------------------------------------------------------------------------
    def init(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stage()
        settings = dict(self.backend_config)
        if self.backend == "local":
            settings.setdefault("path", str(self.work_dir / "terraform.tfstate"))
        backend_file = write_secret(
            self.work_dir / "backend.tfbackend",
            "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(settings.items())),
        )
        self._run("init", backend_config=str(backend_file), reconfigure=_FLAG, input=False)

    def plan(self, destroy: bool = False) -> Plan:
        self._stage()
        plan_path = self.work_dir / ("destroy.tfplan" if destroy else "apply.tfplan")
        code, _, _ = self._run(
            "plan",
            out=str(plan_path),
            var_file=[*(str(self.module_dir / f) for f in self.var_files), str(self._var_file())],
            detailed_exitcode=_FLAG,
            destroy=_FLAG if destroy else None,
            ok_codes=(0, 2),
        )
        return Plan(path=plan_path, changes=self._changes(plan_path) if code == 2 else (), destroy=destroy)

    def apply(self, plan: Plan) -> None:
        if not plan.path.exists():
            raise OperationFailed(f"plan `{plan.path}` is gone; plan again before applying.")
        self._run("apply", str(plan.path), auto_approve=_FLAG)
        plan.path.unlink(missing_ok=True)

    def outputs(self) -> dict[str, Any]:
        _, out, _ = self._run("output", json=_FLAG)
        try:
            raw = json.loads(out or "{}")
        except json.JSONDecodeError:
            raise OperationFailed(
                f"`terraform output -json` in `{self.module_dir}` printed no JSON; run it by hand."
            ) from None
        return {name: (None if o.get("sensitive") else o.get("value")) for name, o in raw.items()}

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _var_file(self) -> Path:
        return write_secret(
            self.work_dir / "iotctl.tfvars.json", json.dumps(dict(self.variables), indent=2, sort_keys=True)
        )

    def _changes(self, plan_path: Path) -> tuple[ResourceChange, ...]:
        _, out, _ = self._run("show", str(plan_path), json=_FLAG)
        data = json.loads(out)
        changes = []
        for rc in data.get("resource_changes", []):
            actions = rc.get("change", {}).get("actions", [])
            if actions in (["no-op"], ["read"]):
                continue
            action = "replace" if set(actions) == {"create", "delete"} else actions[0]
            changes.append(ResourceChange(rc["address"], action))
        return tuple(changes)

    def _run(self, command: str, *args: str, ok_codes: tuple[int, ...] = (0,), **options: Any) -> tuple[int, str, str]:
        from python_terraform import IsFlagged, Terraform

        tf = Terraform(working_dir=str(self.module_dir), terraform_bin_path=self.binary)
        options = {k: (IsFlagged if v is _FLAG else v) for k, v in options.items() if v is not None}
        env = _environment(TF_DATA_DIR=str(self.work_dir / "data"), TF_IN_AUTOMATION="1", TF_INPUT="0")
        with env, warnings.catch_warnings():
            # python-terraform logs every non-zero exit (plan's "2 = changes" too) with the deprecated Logger.warn;
            # we classify failures ourselves, so its logger is quiet and its DeprecationWarning is not ours to show.
            warnings.filterwarnings("ignore", "The 'warn' method is deprecated", DeprecationWarning)
            logging.getLogger("python_terraform").setLevel(logging.CRITICAL)
            code, out, err = tf.cmd(command, *args, no_color=IsFlagged, **options)
        if code not in ok_codes:
            raise _classify(command, self.module_dir, err or out or "")
        return code, out or "", err or ""


def find_terraform(explicit: str | None = None) -> str:
    """The terraform binary: ``explicit``, then ``IOTCTL_TERRAFORM``, then ``terraform`` on PATH."""
    candidate = explicit or os.environ.get(TERRAFORM_ENV) or "terraform"
    found = shutil.which(candidate)
    if not found:
        raise MissingDependency(f"`{candidate}` not found; {INSTALL_HINT}.")
    return found


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """python-terraform passes os.environ to terraform; set these for one call only."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_AZURE_LOGIN = re.compile(
    r"az login|Azure CLI|building AzureRM Client|unable to build authorizer|ARM_SUBSCRIPTION_ID", re.I
)
_REGISTRY = re.compile(
    r"registry\.terraform\.io|Failed to query available provider packages|could not connect to", re.I
)


def _classify(command: str, module_dir: Path, stderr: str) -> IotctlError:
    """One typed error for a failed terraform command (the first ``Error:`` line, never the whole log)."""
    first = next((line.strip() for line in stderr.splitlines() if line.strip().startswith("Error:")), "")
    detail = first.removeprefix("Error:").strip() or (stderr.strip().splitlines() or ["no output"])[-1]
    detail = detail[:240].rstrip(".")
    if _AZURE_LOGIN.search(stderr):
        return AuthRefused(
            f"Terraform found no Azure login for `{module_dir.name}` ({detail}); run `az login` (and `az account set "
            "--subscription …`), or set ARM_CLIENT_ID, ARM_TENANT_ID and ARM_SUBSCRIPTION_ID for a service principal."
        )
    if _REGISTRY.search(stderr):
        return Unreachable(
            f"Terraform could not download the providers of `{module_dir.name}` ({detail}); check access to "
            "registry.terraform.io or configure a provider mirror (TF_CLI_CONFIG_FILE)."
        )
    return OperationFailed(f"`terraform {command}` failed in `{module_dir}`: {detail}; fix it and run again.")
