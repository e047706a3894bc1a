"""`iotctl deploy aks --env dev|staging|prod`: from a subscription to a synced, healthy environment in one command.

The steps, each a function of :class:`AksDeployment` that reports through :class:`Hooks` (the CLI draws them):

1. **Terraform** (:mod:`iotctl.deploy.terraform`, python-terraform): the shared platform root
   (``infra/terraform/aks/platform``) and the environment's root (``aks/environment`` with
   ``environments/<env>.tfvars``), each with its own state and data directory under
   ``<state_dir>/deploy/aks/``; the platform's ``environment_inputs[<env>]`` output is the environment root's
   ``platform`` variable. Each plan is shown and applied only when ``Hooks.confirm`` says so (``--yes``).
   The API server and the vault admit only ``allow_cidrs`` (the operator's detected address unless given).
2. **Secrets**: the environment's Key Vault gets every missing catalog secret (:mod:`iotctl.secrets.vault`), the
   TLS certificates for the broker and config-server host names.
3. **Cluster credentials**: the API server's URL and CA from Azure, the operator's Entra ID token for the AKS
   server application, written to one 0600 kubeconfig (local accounts are off; no kubelogin).
4. **Argo CD and External Secrets** (:mod:`iotctl.deploy.addons`), the managed-Prometheus settings ConfigMap
   (``podannotationnamespaceregex``), and the GitOps objects (``infra/argocd`` rendered with every deployed
   environment's Terraform outputs as its list elements).
5. **Checks before waiting**: the images the environment's values name exist in the registry; the workload
   identity chain (:mod:`iotctl.deploy.identity`) is whole.
6. **Waiting** (:mod:`iotctl.deploy.rollout`) until the Application is Synced/Healthy and its secrets are Ready
   (prod, which syncs by hand, is synced once after a confirmation), then the environment is **registered**
   (kind ``aks``, credentials ``keyvault:<uri>``) and its endpoints returned.

Also here: the plan-only path, a status view, the checks alone, a destroy path that names what goes and wants the
environment's name typed, and the migration Job that ``iotctl db migrate --env <aks env>`` runs.

No typer, no rich: typed errors, data back. Nothing secret is returned, recorded or logged: Terraform's sensitive
outputs are dropped by :class:`~iotctl.deploy.terraform.TerraformRoot`, vault values go from the generator to the
vault, and the Kubernetes token lives only in the 0600 kubeconfig.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.deploy import addons, identity, rollout
from iotctl.deploy.cluster import Cluster
from iotctl.deploy.terraform import Plan, TerraformRoot
from iotctl.errors import InvalidInput, IotctlError, MissingDependency, NotFound, OperationFailed, Unreachable
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
PACKAGE_REPO = Path(__file__).resolve().parents[2]


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"`{path}` cannot be read ({exc}); fix or delete it.") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
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


def _git_origin(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------- the flow


class AksDeployment:
    """One environment's deployment: its inputs (remembered between runs), Terraform roots, vault and cluster."""

    def __init__(
        self,
        state_dir: Path,
        request: AksRequest,
        hooks: Hooks | None = None,
        *,
        root: Path | None = None,
        terraform_binary: str | None = None,
        azure: Any = None,
        vault_options: dict[str, Any] | None = None,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if request.env not in ENVIRONMENTS:
            raise InvalidInput(
                f"`{request.env}` is not an AKS environment; pass --env dev, staging or prod (IOTCTL_ENV)."
            )
        self.state_dir = Path(state_dir)
        self.request = request
        self.env = request.env
        self.hooks = hooks or Hooks()
        self.layout = Layout(self.state_dir)
        self._root = root
        self._terraform_binary = terraform_binary
        self._azure = azure
        self._vault_options = vault_options or {}
        self.poll_s, self.clock, self.sleep = poll_s, clock, sleep
        self.settings = _read_json(self.layout.settings_file)
        self.record = _read_json(self.layout.record(self.env))
        self._cluster: Cluster | None = None

    # -- inputs ---------------------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = repo_root()
        return self._root

    @property
    def azure(self) -> Any:
        if self._azure is None:
            from iotctl.deploy.azure import Azure

            self._azure = Azure()
        return self._azure

    def _env_inputs(self) -> dict[str, Any]:
        return dict((self.settings.get("environments") or {}).get(self.env) or {})

    def _require(self, value: Any, flag: str, what: str) -> Any:
        if not value:
            raise InvalidInput(f"{what} is not known yet; pass {flag} (it is remembered for the next runs).")
        return value

    def resolve_inputs(self, detect: bool = True) -> dict[str, Any]:
        """The inputs of this run: flags over remembered values; the operator's address detected when not given."""
        from iotctl.deploy.azure import detect_public_address, parse_cidrs

        r, env_inputs = self.request, self._env_inputs()
        location = r.location or self.settings.get("location")
        cidrs = parse_cidrs(r.allow_cidrs) if r.allow_cidrs else tuple(self.settings.get("allow_cidrs") or ())
        if not r.allow_cidrs and detect:
            try:
                detected = detect_public_address()
            except (Unreachable, InvalidInput) as exc:
                if not cidrs:
                    raise
                self.hooks.step(f"{str(exc).split(';')[0]}; keeping the remembered allow-list {', '.join(cidrs)}")
                detected = cidrs[0]
            if detected not in cidrs:
                self.hooks.step(f"your public address {detected} is added to the API server's and vault's allow-lists")
                cidrs = (*cidrs, detected)
        repo_url = r.repo_url or self.settings.get("repo_url") or _git_origin(self.root)
        if r.database_url:
            from urllib.parse import urlsplit

            parts = urlsplit(r.database_url)
            if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or parts.password:
                raise InvalidInput(
                    "--database-url must be postgresql://user@host:port/db without a password (it is read from the "
                    "vault); fix the value you passed."
                )
        backend = r.backend_config or self.settings.get("backend_config")
        return {
            "location": self._require(location, "--location", "The Azure region (e.g. westeurope)"),
            "allow_cidrs": list(self._require(cidrs, "--allow-cidr", "Who may reach the API server and the vault")),
            "repo_url": self._require(repo_url, "--repo-url", "The Git repository Argo CD reads"),
            "revision": r.revision or env_inputs.get("revision") or "main",
            "broker_host": self._require(
                r.broker_host or env_inputs.get("broker_host"), "--broker-host", f"The broker's DNS name in {self.env}"
            ),
            "config_host": self._require(
                r.config_host or env_inputs.get("config_host"),
                "--config-host",
                f"The config server's DNS name in {self.env}",
            ),
            "backend_config": str(backend) if backend else None,
            "database_url": r.database_url or env_inputs.get("database_url"),
        }

    def _remember(self, inputs: dict[str, Any]) -> None:
        settings = dict(self.settings)
        for key in ("location", "allow_cidrs", "repo_url", "backend_config"):
            settings[key] = inputs[key]
        envs = dict(settings.get("environments") or {})
        envs[self.env] = {k: inputs[k] for k in ("broker_host", "config_host", "revision", "database_url") if inputs[k]}
        settings["environments"] = envs
        _write_json(self.layout.settings_file, settings)
        self.settings = settings

    # -- Terraform ------------------------------------------------------------------------------------------------
    def _backend(self, backend_config: str | None, key: str) -> tuple[str, dict[str, str]]:
        if not backend_config:
            return "local", {}
        return "azurerm", {**parse_backend_config(Path(backend_config)), "key": key}

    def platform_root(self, inputs: dict[str, Any]) -> TerraformRoot:
        backend, config = self._backend(inputs.get("backend_config"), "iots6/aks/platform.tfstate")
        return TerraformRoot(
            source=self.root / "infra" / "terraform",
            root=PLATFORM_ROOT,
            work_dir=self.layout.platform_dir,
            variables={"location": inputs["location"], "api_server_authorized_ip_ranges": inputs["allow_cidrs"]},
            backend=backend,
            backend_config=config,
            binary=self._terraform_binary,
        )

    def environment_root(self, inputs: dict[str, Any], platform_inputs: dict[str, Any] | None) -> TerraformRoot:
        backend, config = self._backend(inputs.get("backend_config"), f"iots6/aks/env/{self.env}.tfstate")
        variables: dict[str, Any] = {"key_vault_allowed_cidrs": inputs["allow_cidrs"]}
        if platform_inputs is not None:
            variables["platform"] = platform_inputs
        return TerraformRoot(
            source=self.root / "infra" / "terraform",
            root=ENVIRONMENT_ROOT,
            work_dir=self.layout.env_dir(self.env) / "terraform",
            variables=variables,
            backend=backend,
            backend_config=config,
            binary=self._terraform_binary,
            var_files=(f"environments/{self.env}.tfvars",),
        )

    def _platform_inputs(self, outputs: dict[str, Any]) -> dict[str, Any] | None:
        per_env = outputs.get("environment_inputs") or {}
        if not per_env:
            return None
        if self.env not in per_env:
            raise InvalidInput(
                f"the platform hosts {sorted(per_env)} but not `{self.env}`; add it to the platform's `environments` "
                "variable (append, never reorder) and run again."
            )
        return per_env[self.env]

    def _plan_and_apply(self, tf: TerraformRoot, label: str) -> dict[str, Any]:
        self.hooks.step(f"terraform: init {label}")
        tf.init()
        self.hooks.step(f"terraform: plan {label}")
        plan = tf.plan()
        summary = {"root": label, **plan.as_dict(), "applied": False}
        if not plan.has_changes:
            self.hooks.step(f"terraform: {label} is up to date")
            return summary
        if not self.hooks.confirm(f"Apply the plan of {label} ({_counts(plan)})?", _plan_lines(plan)):
            raise OperationFailed(
                f"the plan of `{label}` was not applied (declined); nothing after it ran. Re-run with --yes to apply."
            )
        self.hooks.step(f"terraform: apply {label} ({_counts(plan)})")
        tf.apply(plan)
        summary["applied"] = True
        return summary

    # -- the deployment -------------------------------------------------------------------------------------------
    def deploy(self) -> dict[str, Any]:
        self._refuse_foreign_environment()
        inputs = self.resolve_inputs()
        plans = []
        platform = self.platform_root(inputs)
        plans.append(self._plan_and_apply(platform, PLATFORM_ROOT))
        platform_out = platform.outputs()
        environment = self.environment_root(inputs, self._platform_inputs(platform_out))
        if "platform" not in environment.variables:
            raise OperationFailed(
                f"`{PLATFORM_ROOT}` has no `environment_inputs` output after its apply; check its outputs.tf."
            )
        plans.append(self._plan_and_apply(environment, f"{ENVIRONMENT_ROOT} ({self.env})"))
        env_out = environment.outputs()
        self._remember(inputs)
        self._save_record(inputs, platform_out, env_out)

        secrets = self.seed_secrets(env_out, inputs)
        cluster = self.cluster(platform_out)
        installed = [
            addons.install(
                cluster,
                addon,
                self.layout.charts_dir,
                self.request.chart_mirror,
                progress=self.hooks.step,
                poll_s=self.poll_s,
                clock=self.clock,
                sleep=self.sleep,
            ).as_dict()
            for addon in addons.ADDONS
        ]
        self.apply_metrics_settings(cluster)
        elements = self.apply_gitops(cluster, inputs, platform_out, env_out)
        images = self.check_images(platform_out, env_out)
        self._raise_for_images(images)
        findings = self.check_identity(cluster, platform_out, env_out, before_sync=True)
        if findings:
            raise IdentityBroken(identity.summary(findings), findings)
        synced = self._sync_by_hand_if_needed(cluster, elements)
        checks = self.wait(cluster, platform_out, env_out)
        env = self.register(env_out, inputs)
        return {
            "environment": self.env,
            "registered": str(env.file),
            "plans": plans,
            "secrets": secrets,
            "addons": installed,
            "images": [i.as_dict() for i in images],
            "synced_by_iotctl": synced,
            "checks": [c.as_dict() for c in checks],
            "endpoints": self.endpoints(cluster, inputs),
        }

    def plan(self) -> dict[str, Any]:
        """Plan both roots without applying (the environment's plan needs the platform's outputs)."""
        inputs = self.resolve_inputs()
        platform = self.platform_root(inputs)
        self.hooks.step(f"terraform: init {PLATFORM_ROOT}")
        platform.init()
        self.hooks.step(f"terraform: plan {PLATFORM_ROOT}")
        platform_plan = platform.plan()
        result: dict[str, Any] = {"environment": self.env, "platform": platform_plan.as_dict(), "note": ""}
        platform_inputs = self._platform_inputs(platform.outputs())
        if platform_inputs is None:
            result["environment_plan"] = None
            result["note"] = (
                f"the plan of {ENVIRONMENT_ROOT} needs the platform's outputs: apply the platform first "
                f"(`iotctl deploy aks --env {self.env}`)"
            )
            return result
        environment = self.environment_root(inputs, platform_inputs)
        self.hooks.step(f"terraform: init {ENVIRONMENT_ROOT} ({self.env})")
        environment.init()
        self.hooks.step(f"terraform: plan {ENVIRONMENT_ROOT} ({self.env})")
        result["environment_plan"] = environment.plan().as_dict()
        if platform_plan.has_changes:
            result["note"] = "the environment's plan is against the platform as it is now, before its changes"
        return result

    # -- steps ----------------------------------------------------------------------------------------------------
    def _refuse_foreign_environment(self) -> None:
        from iotctl.environments import environments_dir

        file = environments_dir(self.state_dir) / f"{self.env}.toml"
        if file.exists():
            from iotctl.environments import load

            existing = load(self.state_dir, self.env)
            if existing.kind != "aks":
                raise InvalidInput(
                    f"environment `{self.env}` is registered as a `{existing.kind}` platform (`{file}`); remove it "
                    f"(`iotctl env remove {self.env}`) before deploying it on AKS."
                )

    def _save_record(self, inputs: dict[str, Any], platform_out: dict[str, Any], env_out: dict[str, Any]) -> None:
        self.record = {
            "environment": self.env,
            "inputs": {k: inputs[k] for k in ("broker_host", "config_host", "revision", "repo_url")},
            "platform": platform_out,
            "outputs": env_out,
            "applied_at": _now(),
        }
        _write_json(self.layout.record(self.env), self.record)

    def _vault(self, env_out: dict[str, Any]) -> Any:
        from iotctl.secrets.vault import KeyVault

        uri = _output(env_out, "key_vault_uri", ENVIRONMENT_ROOT)
        return KeyVault(uri, **self._vault_options)

    def seed_secrets(self, env_out: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        from iotctl.secrets.vault import TlsNames, seed

        vault = self._vault(env_out)
        self.hooks.step(f"secrets: seeding what is missing in {vault.url}")
        report = seed(
            vault,
            TlsNames(broker=[inputs["broker_host"]], config=[inputs["config_host"]]),
            in_cluster_database=not env_out.get("postgres"),
        )
        self.hooks.step(
            f"secrets: {len(report.created)} created, {len(report.kept)} kept"
            + (f", {len(report.skipped)} left to Terraform" if report.skipped else "")
        )
        return report.as_dict()

    def cluster(self, platform_out: dict[str, Any]) -> Cluster:
        """Fresh cluster credentials (0600 kubeconfig) and the cluster behind them."""
        if self._cluster is None:
            cluster_id = _output(platform_out, "kubernetes_cluster_id", PLATFORM_ROOT)
            name = platform_out.get("kubernetes_cluster_name") or cluster_id.rsplit("/", 1)[-1]
            self.hooks.step(f"cluster: credentials for `{name}` (Entra ID token, 0600 kubeconfig)")
            endpoint = self.azure.cluster_endpoint(cluster_id)
            write_kubeconfig(
                self.layout.kubeconfig, name, endpoint.server, endpoint.ca_data, self.azure.kubernetes_token()
            )
            self._cluster = connect_cluster(self.layout.kubeconfig)
        return self._cluster

    def apply_metrics_settings(self, cluster: Cluster) -> str:
        """Let managed Prometheus scrape annotated pods in the iots6 namespaces (keeping any other namespaces)."""
        import re

        current = cluster.get("v1", "ConfigMap", METRICS_CONFIGMAP, "kube-system") or {}
        data = current.get("data") or {}
        found = re.search(r'podannotationnamespaceregex\s*=\s*"([^"]*)"', data.get("pod-annotation-based-scraping", ""))
        existing = found.group(1) if found else ""
        if METRICS_REGEX in existing.split("|"):
            regex = existing
        else:
            regex = f"{existing}|{METRICS_REGEX}" if existing else METRICS_REGEX
        wanted = {"pod-annotation-based-scraping": f'podannotationnamespaceregex = "{regex}"'}
        if "schema-version" not in data:
            wanted["schema-version"] = "v1"
        cluster.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": METRICS_CONFIGMAP, "namespace": "kube-system"},
                    "data": wanted,
                }
            ]
        )
        self.hooks.step(f"metrics: managed Prometheus scrapes annotated pods in namespaces `{regex}`")
        return regex

    def element(self, inputs: dict[str, Any], platform_out: dict[str, Any], env_out: dict[str, Any]) -> dict[str, Any]:
        """This environment's ApplicationSet element (infra/argocd/values.yaml documents each key)."""
        postgres = env_out.get("postgres") or {}
        return {
            "name": self.env,
            "autoSync": self.env != "prod",
            "revision": inputs["revision"],
            "keyVaultUri": _output(env_out, "key_vault_uri", ENVIRONMENT_ROOT),
            "workloadIdentityClientId": _output(env_out, "workload_identity_client_id", ENVIRONMENT_ROOT),
            "containerRegistryLoginServer": _output(platform_out, "container_registry_login_server", PLATFORM_ROOT),
            "postgresHost": postgres.get("host") or "",
            "postgresAdminLogin": postgres.get("admin_login") or "postgres",
            "postgresSubnetCidr": env_out.get("postgres_subnet_cidr") or "",
            "prometheusQueryEndpoint": platform_out.get("prometheus_query_endpoint") or "",
            "configServerHost": inputs["config_host"],
        }

    def apply_gitops(
        self,
        cluster: Cluster,
        inputs: dict[str, Any],
        platform_out: dict[str, Any],
        env_out: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Apply the ApplicationSet and AppProject with this environment's element (``env_out`` None: without it),
        keeping the elements of the other environments already deployed. Returns the elements applied."""
        existing = cluster.get(*APPLICATIONSET, APPLICATIONSET_NAME, rollout.ARGOCD_NAMESPACE)
        elements = {e["name"]: e for e in _elements_of(existing)}
        if env_out is None:
            elements.pop(self.env, None)
        else:
            mine = self.element(inputs, platform_out, env_out)
            if self.env in elements:  # an operator's choice of autoSync survives a re-deploy
                mine["autoSync"] = elements[self.env]["autoSync"]
            elements[self.env] = mine
        ordered = [elements[e] for e in ENVIRONMENTS if e in elements]
        if not ordered:
            cluster.delete(*APPLICATIONSET, APPLICATIONSET_NAME, rollout.ARGOCD_NAMESPACE)
            cluster.delete("argoproj.io/v1alpha1", "AppProject", "iots6", rollout.ARGOCD_NAMESPACE)
            self.hooks.step("gitops: no environment left; ApplicationSet `iots6` and AppProject `iots6` deleted")
            return []
        values = {"repoURL": inputs["repo_url"], "revision": "main", "environments": ordered}
        objects = render_gitops(self.root / "infra" / "argocd", values)
        cluster.apply(objects)
        self.hooks.step(
            f"gitops: ApplicationSet `{APPLICATIONSET_NAME}` applied with {', '.join(e['name'] for e in ordered)} "
            f"from {inputs['repo_url']}"
        )
        return ordered

    def check_images(self, platform_out: dict[str, Any], env_out: dict[str, Any]) -> tuple[ImageCheck, ...]:
        """Every image the environment's values name that lives in the platform's registry, looked up there."""
        registry_host = _output(platform_out, "container_registry_login_server", PLATFORM_ROOT)
        checks = []
        registry = None
        for component, image in wanted_images(self.root, self.env, registry_host):
            if image["registry"] != registry_host:
                checks.append(ImageCheck(component, image["reference"], "external"))
                continue
            if image["unpinned"]:
                checks.append(
                    ImageCheck(
                        component,
                        image["reference"],
                        "unpinned",
                        f"values-{self.env}.yaml pins no digest for `{component}`; promote the digests staging ran "
                        "(docs/deploy-aks.md, Promotion)",
                    )
                )
                continue
            if registry is None:
                registry = self.azure.registry(registry_host, env_out.get("tenant_id"))
            present = registry.manifest_exists(image["repository"], image["lookup"])
            fix = "" if present else _push_hint(registry_host, image, component)
            checks.append(ImageCheck(component, image["reference"], "present" if present else "missing", fix))
        for check in checks:
            self.hooks.step(f"image {check.reference}: {check.state}")
        return tuple(checks)

    def _raise_for_images(self, images: tuple[ImageCheck, ...]) -> None:
        bad = [i for i in images if i.state in ("missing", "unpinned")]
        if not bad:
            return
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        first = bad[0]
        if first.state == "unpinned":
            raise ImagesMissing(f"image `{first.reference}` is not pinned{more}; {first.fix}.", images)
        raise ImagesMissing(f"image `{first.reference}` is not in the registry{more}; {first.fix}.", images)

    def identity_facts(self, platform_out: dict[str, Any], env_out: dict[str, Any]) -> identity.IdentityFacts:
        fc = _output(env_out, "federated_credential", ENVIRONMENT_ROOT)
        audience = fc.get("audience") or identity.AUDIENCE
        audiences = tuple(audience) if isinstance(audience, list | tuple) else (audience,)
        cluster_id = _output(platform_out, "kubernetes_cluster_id", PLATFORM_ROOT)
        subscription = cluster_id.split("/")[2] if cluster_id.count("/") >= 2 else ""
        vault_id = (
            f"/subscriptions/{subscription}/resourceGroups/{_output(env_out, 'resource_group_name', ENVIRONMENT_ROOT)}"
            f"/providers/Microsoft.KeyVault/vaults/{_output(env_out, 'key_vault_name', ENVIRONMENT_ROOT)}"
        )
        roles = self.azure.role_names(vault_id, _output(env_out, "workload_identity_principal_id", ENVIRONMENT_ROOT))
        return identity.IdentityFacts(
            cluster_oidc_issuer=_output(platform_out, "oidc_issuer_url", PLATFORM_ROOT),
            client_id=_output(env_out, "workload_identity_client_id", ENVIRONMENT_ROOT),
            federated_credentials=(
                identity.FederatedCredential(
                    name=f"iots6-{self.env}-secrets",
                    issuer=fc.get("issuer", ""),
                    subject=fc.get("subject", ""),
                    audiences=audiences,
                ),
            ),
            vault_roles=roles,
            namespace=env_out.get("kubernetes_namespace") or rollout.namespace_of(self.env),
            service_account=env_out.get("kubernetes_service_account") or "iots6-secrets",
        )

    def check_identity(
        self, cluster: Cluster, platform_out: dict[str, Any], env_out: dict[str, Any], before_sync: bool = False
    ) -> list[identity.Finding]:
        """The broken links of the workload identity chain. Before the first sync the service account does not
        exist yet; that link is then left to the rollout wait (which names it if it never appears)."""
        self.hooks.step("identity: checking the workload identity chain")
        findings = identity.check(self.identity_facts(platform_out, env_out), cluster)
        if before_sync:
            findings = [f for f in findings if not (f.link == "service account" and "does not exist" in f.problem)]
        for finding in findings:
            self.hooks.step(f"identity: {finding.sentence()}")
        if not findings:
            self.hooks.step("identity: issuer, subject, audience, service account and vault role all match")
        return findings

    def _sync_by_hand_if_needed(self, cluster: Cluster, elements: list[dict[str, Any]]) -> bool:
        """An environment without automated sync (prod) is synced once, after the operator confirms."""
        mine = next((e for e in elements if e["name"] == self.env), None)
        if mine is None or mine["autoSync"]:
            return False
        name = rollout.application_of(self.env)
        deadline = self.clock() + 120
        while cluster.get(*rollout.APPLICATION, name, rollout.ARGOCD_NAMESPACE) is None:
            if self.clock() >= deadline:
                raise OperationFailed(
                    f"Argo CD did not generate Application `{name}` within 120 s; check the ApplicationSet's "
                    f"status (`kubectl -n argocd describe applicationset {APPLICATIONSET_NAME}`)."
                )
            self.sleep(self.poll_s)
        question = f"{self.env} syncs by hand: sync Application `{name}` to `{mine['revision']}` now?"
        details = ["Argo CD runs the migration Job, then rolls the broker, ingest, config server and Grafana."]
        if not self.hooks.confirm(question, details):
            raise OperationFailed(
                f"`{name}` was not synced (declined); sync it with `argocd app sync {name}` or re-run with --yes."
            )
        trigger_sync(cluster, self.env)
        self.hooks.step(f"gitops: sync of `{name}` requested")
        return True

    def wait(
        self, cluster: Cluster, platform_out: dict[str, Any], env_out: dict[str, Any]
    ) -> tuple[rollout.Check, ...]:
        self.hooks.step(
            f"rollout: waiting up to {int(self.request.timeout_s)} s for {rollout.application_of(self.env)}"
        )
        try:
            return rollout.wait(
                cluster,
                self.env,
                self.request.timeout_s,
                poll_s=self.poll_s,
                on_change=self.hooks.checks,
                clock=self.clock,
                sleep=self.sleep,
            )
        except rollout.RolloutFailed as exc:
            secrets_failing = any(
                not c.ready and c.what.startswith(("SecretStore", "ExternalSecret")) for c in exc.checks
            )
            if secrets_failing:
                findings = identity.check(self.identity_facts(platform_out, env_out), cluster)
                if findings:
                    raise rollout.RolloutFailed(
                        f"{str(exc).rstrip('.')}; {identity.summary(findings)}", exc.checks
                    ) from None
            raise

    def register(self, env_out: dict[str, Any], inputs: dict[str, Any]):
        from iotctl.environments import CA_CERT, DB_JOB, KEYVAULT_PREFIX, register_environment

        vault = self._vault(env_out)
        ca = vault._value(CA_CERT)
        env = register_environment(
            self.state_dir,
            self.env,
            "aks",
            broker_host=inputs["broker_host"],
            broker_port=BROKER_PORT,
            broker_tls=True,
            config_url=f"https://{inputs['config_host']}",
            database_access=DB_JOB,
            database_url=inputs.get("database_url"),
            credentials=f"{KEYVAULT_PREFIX}{vault.url}/",
            secrets={CA_CERT: ca},
            description=f"AKS namespace {rollout.namespace_of(self.env)} (iotctl deploy aks)",
            replace=True,
        )
        self.hooks.step(f"environment `{self.env}` registered ({env.file}); use it with --env {self.env}")
        return env

    def endpoints(self, cluster: Cluster, inputs: dict[str, Any]) -> dict[str, Any]:
        ns = rollout.namespace_of(self.env)
        broker_svc = cluster.get("v1", "Service", "iots6-mosquitto-tls", ns) or {}
        ingress = cluster.get("networking.k8s.io/v1", "Ingress", "iots6-config-server", ns) or {}
        broker_ip, config_ip = _lb_address(broker_svc), _lb_address(ingress)
        dns = []
        if broker_ip:
            dns.append(f"{inputs['broker_host']} A {broker_ip}")
        if config_ip:
            dns.append(f"{inputs['config_host']} A {config_ip}")
        return {
            "broker": f"mqtts://{inputs['broker_host']}:{BROKER_PORT}",
            "broker_address": broker_ip,
            "config_server": f"https://{inputs['config_host']}",
            "config_server_address": config_ip,
            "dns_records": dns,
            "grafana": f"kubectl -n {ns} port-forward svc/iots6-grafana 3000:80, then http://127.0.0.1:3000",
        }

    # -- status, checks, destroy ----------------------------------------------------------------------------------
    def _outputs_now(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(inputs, platform outputs, environment outputs) from Terraform, without planning anything."""
        if not self.record:
            raise NotFound(
                f"`{self.env}` has not been deployed from this machine (no `{self.layout.record(self.env)}`); run "
                f"`iotctl deploy aks --env {self.env}` first."
            )
        inputs = {**self.resolve_inputs(detect=False)}
        platform = self.platform_root(inputs)
        environment = self.environment_root(inputs, None)
        self.hooks.step("terraform: reading the outputs of both roots")
        platform.init()
        environment.init()
        return inputs, platform.outputs(), environment.outputs()

    def status(self) -> dict[str, Any]:
        inputs, platform_out, env_out = self._outputs_now()
        result: dict[str, Any] = {
            "environment": self.env,
            "terraform": {"platform": platform_out, "environment": env_out},
            "applied_at": self.record.get("applied_at"),
            "images": [
                {"component": c, "reference": i["reference"]}
                for c, i in wanted_images(self.root, self.env, platform_out.get("container_registry_login_server"))
            ],
        }
        try:
            cluster = self.cluster(platform_out)
            app = cluster.get(*rollout.APPLICATION, rollout.application_of(self.env), rollout.ARGOCD_NAMESPACE)
            result["application"] = application_summary(app)
            result["checks"] = [c.as_dict() for c in rollout.observe(cluster, self.env)]
            result["endpoints"] = self.endpoints(cluster, inputs)
        except IotctlError as exc:
            result["application"] = {"error": str(exc)}
        return result

    def check(self) -> dict[str, Any]:
        """The checks alone, against what is deployed: images, the identity chain, one look at the rollout."""
        _inputs, platform_out, env_out = self._outputs_now()
        cluster = self.cluster(platform_out)
        images = self.check_images(platform_out, env_out)
        findings = self.check_identity(cluster, platform_out, env_out)
        checks = rollout.observe(cluster, self.env)
        self.hooks.checks(checks)
        ok = (
            not findings
            and all(c.ready for c in checks)
            and not any(i.state in ("missing", "unpinned") for i in images)
        )
        return {
            "environment": self.env,
            "ok": ok,
            "images": [i.as_dict() for i in images],
            "identity": [{"link": f.link, "problem": f.problem, "fix": f.fix} for f in findings],
            "checks": [c.as_dict() for c in checks],
        }

    def destroy(self) -> dict[str, Any]:
        """Remove the environment: its Application and namespace, its Terraform resources, its registration."""
        from iotctl.environments import environments_dir, remove_environment

        inputs, platform_out, _env_out = self._outputs_now()
        environment = self.environment_root(inputs, self._platform_inputs(platform_out))
        self.hooks.step(f"terraform: plan -destroy {ENVIRONMENT_ROOT} ({self.env})")
        plan = environment.plan(destroy=True)
        ns = rollout.namespace_of(self.env)
        registered = (environments_dir(self.state_dir) / f"{self.env}.toml").exists()
        lines = [
            f"Application argocd/{rollout.application_of(self.env)} (its element leaves the ApplicationSet)",
            f"namespace {ns} and everything in it: the broker's volume (sessions, device identities), "
            + ("the dev database and its volume, " if self.env == "dev" else "")
            + "Secrets, Grafana",
            *(f"{c.address} ({c.action})" for c in plan.changes),
        ]
        if any("azurerm_key_vault.this" in c.address for c in plan.changes):
            lines.append(
                "the Key Vault is soft-deleted, not purged: its name stays reserved for its retention period"
                + (" (purge protection: it cannot be purged)" if self.env != "dev" else "")
            )
        if any("postgresql_flexible_server" in c.address for c in plan.changes):
            lines.append("the PostgreSQL server, its database and its backups (readings are gone for good)")
        if registered:
            lines.append(f"the registered environment `{self.env}` and its device credentials on this machine")
        lines.append("the shared platform (cluster, registry, monitoring) stays")
        typed = self.hooks.type_name(f"This destroys environment `{self.env}`; type its name to confirm", lines)
        if typed.strip() != self.env:
            raise OperationFailed(f"`{self.env}` was not destroyed: the name typed did not match; nothing changed.")
        cluster = self.cluster(platform_out)
        self.apply_gitops(cluster, inputs, platform_out, None)
        if cluster.delete("v1", "Namespace", ns):
            self.hooks.step(f"cluster: namespace {ns} deleted")
        self.hooks.step(f"terraform: apply the destroy plan of {ENVIRONMENT_ROOT} ({self.env}, {len(plan.changes)})")
        environment.apply(plan)
        if registered:
            remove_environment(self.state_dir, self.env)
        self.layout.record(self.env).unlink(missing_ok=True)
        envs = dict(self.settings.get("environments") or {})
        envs.pop(self.env, None)
        self.settings["environments"] = envs
        _write_json(self.layout.settings_file, self.settings)
        return {"environment": self.env, "destroyed": lines, "terraform": plan.as_dict()}


# ------------------------------------------------------------------------------------------------ helpers


def _output(outputs: dict[str, Any], name: str, root: str) -> Any:
    value = outputs.get(name)
    if value in (None, ""):
        raise OperationFailed(
            f"Terraform output `{name}` of `{root}` is missing or empty; apply the root again, or check its outputs.tf."
        )
    return value


def _counts(plan: Plan) -> str:
    parts = [f"{n} to {action}" for action, n in plan.counts().items() if n]
    return ", ".join(parts) or "no changes"


def _plan_lines(plan: Plan) -> list[str]:
    return [f"{c.action:>8}  {c.address}" for c in plan.changes]


def _lb_address(obj: dict[str, Any]) -> str | None:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None


def _elements_of(appset: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The GitOps values entries behind a live ApplicationSet's list elements."""
    if not appset:
        return []
    keys = (
        "keyVaultUri",
        "workloadIdentityClientId",
        "containerRegistryLoginServer",
        "postgresHost",
        "postgresAdminLogin",
        "postgresSubnetCidr",
        "prometheusQueryEndpoint",
        "configServerHost",
    )
    out = []
    for generator in (appset.get("spec") or {}).get("generators") or []:
        for element in (generator.get("list") or {}).get("elements") or []:
            if element.get("env") not in ENVIRONMENTS:
                continue
            entry = {"name": element["env"], "autoSync": bool(element.get("autoSync"))}
            if element.get("revision"):
                entry["revision"] = element["revision"]
            entry.update({k: str(element.get(k) or "") for k in keys})
            if not entry["postgresAdminLogin"]:
                entry["postgresAdminLogin"] = "postgres"
            out.append(entry)
    return out


def render_gitops(chart_dir: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The ApplicationSet and AppProject of infra/argocd for these values (Helm v4, its values.schema.json)."""
    import yaml

    helm = addons._helm()
    try:
        with helm.Chart.load(chart_dir) as chart:
            rendered = chart.render(values, name=GITOPS_RELEASE, namespace=rollout.ARGOCD_NAMESPACE, is_install=True)
    except helm.HelmValuesError as exc:
        raise InvalidInput(
            f"the GitOps values are refused by `{chart_dir}/values.schema.json` ({str(exc).splitlines()[0][:240]}); "
            "check the Terraform outputs and the hosts you passed."
        ) from None
    except helm.HelmError as exc:
        raise OperationFailed(f"`{chart_dir}` does not render ({str(exc).splitlines()[0][:240]}).") from None
    objects = []
    for path in sorted(rendered):
        objects.extend(d for d in yaml.safe_load_all(rendered[path]) if isinstance(d, dict) and d.get("kind"))
    return objects


def trigger_sync(cluster: Cluster, env: str) -> str:
    """Ask Argo CD to sync the environment's Application (as `argocd app sync` does: an `operation`)."""
    request = uuid.uuid4().hex[:12]
    cluster.apply(
        [
            {
                "apiVersion": rollout.APPLICATION[0],
                "kind": rollout.APPLICATION[1],
                "metadata": {"name": rollout.application_of(env), "namespace": rollout.ARGOCD_NAMESPACE},
                "operation": {
                    "initiatedBy": {"username": "iotctl"},
                    "info": [{"name": "requested-by", "value": f"iotctl deploy aks ({request})"}],
                    "sync": {"syncStrategy": {"hook": {}}},
                },
            }
        ]
    )
    return request


def wanted_images(root: Path, env: str, registry: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The iots6-built images of ``values-<env>.yaml`` over values.yaml, as the chart resolves them."""
    import yaml

    chart = root / "infra" / "helm" / "iots6"
    try:
        base = yaml.safe_load((chart / "values.yaml").read_text()) or {}
        over = yaml.safe_load((chart / f"values-{env}.yaml").read_text()) or {}
        app_version = str((yaml.safe_load((chart / "Chart.yaml").read_text()) or {}).get("appVersion", ""))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"the chart's values in `{chart}` cannot be read ({exc}); fix them.") from None
    values = _deep_merge(base, over)
    images = values.get("images") or {}
    require_digests = bool(images.get("requireDigests"))
    out = []
    for component in BUILT_IMAGES:
        image = images.get(component) or {}
        host = image.get("registry") or registry or images.get("registry") or ""
        repository = image.get("repository", f"iots6-{BUILT_IMAGES[component]}")
        tag = str(image.get("tag") or app_version)
        digest = str(image.get("digest") or "")
        reference = f"{host}/{repository}:{tag}" + (f"@{digest}" if digest else "")
        out.append(
            (
                component,
                {
                    "registry": host,
                    "repository": repository,
                    "tag": tag,
                    "digest": digest,
                    "lookup": digest or tag,
                    "reference": reference,
                    "unpinned": require_digests and not digest,
                    "target": BUILT_IMAGES[component],
                },
            )
        )
    return out


def _push_hint(registry: str, image: dict[str, Any], component: str) -> str:
    ref = f"{registry}/{image['repository']}:{image['tag']}"
    return (
        f"build and push it: `az acr login --name {registry.split('.')[0]} && docker build -f services/Dockerfile "
        f"--target {image['target']} -t {ref} . && docker push {ref}` (docs/deploy-aks.md, Images)"
    )


def application_summary(app: dict[str, Any] | None) -> dict[str, Any]:
    if app is None:
        return {"exists": False}
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    return {
        "exists": True,
        "sync": (status.get("sync") or {}).get("status", "Unknown"),
        "health": (status.get("health") or {}).get("status", "Unknown"),
        "revision": (status.get("sync") or {}).get("revision"),
        "last_sync": operation.get("finishedAt") or operation.get("startedAt"),
        "last_sync_phase": operation.get("phase"),
        "reconciled_at": status.get("reconciledAt"),
        "images": list((status.get("summary") or {}).get("images") or []),
    }


# ---------------------------------------------------------------------------------------------- for secrets


@dataclass(frozen=True)
class VaultTarget:
    url: str
    broker_host: str | None = None
    config_host: str | None = None
    source: str = ""
    #: The environment runs the chart's PostgreSQL (Terraform made no server, so iotctl seeds its admin password).
    in_cluster_database: bool = False

    def tls_names(self):
        from iotctl.secrets.vault import TlsNames

        if self.broker_host and self.config_host:
            return TlsNames(broker=[self.broker_host], config=[self.config_host])
        return None


def vault_target(state_dir: Path, env: str, explicit_url: str | None = None) -> VaultTarget:
    """Which vault `iotctl secrets --env ENV` works on: --vault-url, the registered environment, or the last
    deployment's Terraform outputs from this machine."""
    from iotctl.environments import KEYVAULT_PREFIX, environments_dir, load

    layout = Layout(Path(state_dir))
    record = _read_json(layout.record(env)) if env in ENVIRONMENTS else {}
    hosts = record.get("inputs") or {}
    broker, config = hosts.get("broker_host"), hosts.get("config_host")
    # The committed sizing (environments/dev.tfvars) gives dev the in-cluster database; a deployment says for sure.
    in_cluster = not (record.get("outputs") or {}).get("postgres") if record else env == "dev"
    if explicit_url:
        return VaultTarget(explicit_url, broker, config, "--vault-url", in_cluster)
    if (environments_dir(Path(state_dir)) / f"{env}.toml").exists():
        registered = load(Path(state_dir), env)
        if registered.credentials.startswith(KEYVAULT_PREFIX):
            if not broker:
                broker = registered.broker.host
            if not config:
                from urllib.parse import urlsplit

                config = urlsplit(registered.config_url).hostname
            return VaultTarget(registered.credentials[len(KEYVAULT_PREFIX) :], broker, config, f"environment `{env}`")
    uri = (record.get("outputs") or {}).get("key_vault_uri")
    if uri:
        return VaultTarget(uri, broker, config, f"the last `deploy aks --env {env}`", in_cluster)
    raise NotFound(
        f"no Key Vault is known for `{env}`; deploy it (`iotctl deploy aks --env {env}`), or pass --vault-url "
        "(IOTCTL_KEYVAULT_URL)."
    )


# ------------------------------------------------------------------------------------------ migration Job


@dataclass
class MigrationRun:
    job: str
    namespace: str
    succeeded: bool
    message: str = ""
    logs_hint: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "namespace": self.namespace,
            "succeeded": self.succeeded,
            "message": self.message,
            "logs": self.logs_hint,
        }


def run_migration_job(
    state_dir: Path,
    env: str,
    *,
    timeout_s: float = 900.0,
    progress: Callable[[str], None] = lambda _line: None,
    azure: Any = None,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> MigrationRun:
    """`iotctl db migrate --env <aks env>`: run the chart's migration Job once more, as Argo CD last ran it.

    The chart's Job (``iots6-migrate``, a Sync hook kept until the next sync: ``BeforeHookCreation``) carries the
    image, configuration and Secrets of the last sync. A copy of it runs as ``iots6-migrate-iotctl-<time>`` (the
    same labels, so the same NetworkPolicy lets it reach the database), and its outcome is reported. Migrations are
    idempotent and serialised by an advisory lock, so this is safe while a sync runs one too.
    """
    layout = Layout(Path(state_dir))
    record = _read_json(layout.record(env)) if env in ENVIRONMENTS else {}
    if not record:
        raise NotFound(
            f"`{env}` was not deployed by `iotctl deploy aks` on this machine (no `{layout.record(env)}`); run the "
            "migrations where it was deployed (`iotctl db migrate` there), or sync its Application "
            "(`argocd app sync iots6-<env>`): every sync runs them."
        )
    platform_out = record.get("platform") or {}
    deployment = AksDeployment(
        Path(state_dir),
        AksRequest(env=env),
        Hooks(step=progress),
        root=PACKAGE_REPO,
        azure=azure,
        poll_s=poll_s,
        clock=clock,
        sleep=sleep,
    )
    cluster = deployment.cluster(platform_out)
    ns = rollout.namespace_of(env)
    template = cluster.get("batch/v1", "Job", "iots6-migrate", ns)
    if template is None:
        raise NotFound(
            f"the migration Job `{ns}/iots6-migrate` is not in the cluster (the environment never synced); run "
            f"`iotctl deploy aks --env {env}`, whose sync runs the migrations."
        )
    name = f"iots6-migrate-iotctl-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    job = _job_copy(template, name)
    progress(f"migrations: running Job {ns}/{name} (a copy of the chart's iots6-migrate)")
    cluster.apply([job])
    deadline = clock() + timeout_s
    logs = f"kubectl -n {ns} logs job/{name} --all-containers"
    while True:
        current = cluster.get("batch/v1", "Job", name, ns) or {}
        conditions = (current.get("status") or {}).get("conditions") or []
        done = {c.get("type"): c for c in conditions if c.get("status") == "True"}
        if "Complete" in done or "SuccessCriteriaMet" in done:
            return MigrationRun(name, ns, True, "the migrations ran; the schema is up to date", logs)
        if "Failed" in done:
            reason = done["Failed"].get("message") or done["Failed"].get("reason") or "failed"
            raise OperationFailed(f"the migration Job `{ns}/{name}` failed ({reason}); read `{logs}`.")
        if clock() >= deadline:
            raise OperationFailed(
                f"the migration Job `{ns}/{name}` did not finish within {int(timeout_s)} s; read `{logs}`."
            )
        sleep(poll_s)


def _job_copy(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job's spec for a new Job: no status, no generated selector or controller labels, no hook annotations."""
    generated = ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name")
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    pod_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    pod_meta["labels"] = {k: v for k, v in (pod_meta.get("labels") or {}).items() if k not in generated}
    spec["ttlSecondsAfterFinished"] = 86400
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in generated}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {"iots6.io/started-by": "iotctl db migrate"},
        },
        "spec": spec,
    }
