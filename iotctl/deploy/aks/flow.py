"""The flow of one AKS environment's deployment: :class:`AksDeployment`, its steps in the order they run.

Why one module over 400 lines: the class is the deployment's sequence (inputs, Terraform, secrets, cluster,
GitOps, checks, waiting, registration, status, destroy) sharing one state (the remembered inputs, the record, the
cluster connection); each step is a short method, and the pure pieces it calls live in :mod:`.model`,
:mod:`.gitops` and :mod:`.jobs`. Splitting the class itself would scatter one sequence across files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iotctl.deploy import addons, identity, rollout
from iotctl.deploy.aks.gitops import (
    application_summary,
    elements_of,
    lb_address,
    output,
    plan_counts,
    plan_lines,
    push_hint,
    render_gitops,
    trigger_sync,
    wanted_images,
)
from iotctl.deploy.aks.model import (
    APPLICATIONSET,
    APPLICATIONSET_NAME,
    BROKER_PORT,
    ENVIRONMENT_ROOT,
    ENVIRONMENTS,
    METRICS_CONFIGMAP,
    METRICS_REGEX,
    PLATFORM_ROOT,
    AksRequest,
    Hooks,
    IdentityBroken,
    ImageCheck,
    ImagesMissing,
    Layout,
    connect_cluster,
    git_origin,
    now_iso,
    parse_backend_config,
    read_json,
    repo_root,
    write_json,
    write_kubeconfig,
)
from iotctl.deploy.cluster import Cluster
from iotctl.deploy.terraform import TerraformRoot
from iotctl.errors import InvalidInput, IotctlError, NotFound, OperationFailed, Unreachable

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
        self.settings = read_json(self.layout.settings_file)
        self.record = read_json(self.layout.record(self.env))
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
        repo_url = r.repo_url or self.settings.get("repo_url") or git_origin(self.root)
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
        write_json(self.layout.settings_file, settings)
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
        if not self.hooks.confirm(f"Apply the plan of {label} ({plan_counts(plan)})?", plan_lines(plan)):
            raise OperationFailed(
                f"the plan of `{label}` was not applied (declined); nothing after it ran. Re-run with --yes to apply."
            )
        self.hooks.step(f"terraform: apply {label} ({plan_counts(plan)})")
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
            "applied_at": now_iso(),
        }
        write_json(self.layout.record(self.env), self.record)

    def _vault(self, env_out: dict[str, Any]) -> Any:
        from iotctl.secrets.vault import KeyVault

        uri = output(env_out, "key_vault_uri", ENVIRONMENT_ROOT)
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
            cluster_id = output(platform_out, "kubernetes_cluster_id", PLATFORM_ROOT)
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
            "keyVaultUri": output(env_out, "key_vault_uri", ENVIRONMENT_ROOT),
            "workloadIdentityClientId": output(env_out, "workload_identity_client_id", ENVIRONMENT_ROOT),
            "containerRegistryLoginServer": output(platform_out, "container_registry_login_server", PLATFORM_ROOT),
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
        elements = {e["name"]: e for e in elements_of(existing)}
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
        registry_host = output(platform_out, "container_registry_login_server", PLATFORM_ROOT)
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
            fix = "" if present else push_hint(registry_host, image, component)
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
        fc = output(env_out, "federated_credential", ENVIRONMENT_ROOT)
        audience = fc.get("audience") or identity.AUDIENCE
        audiences = tuple(audience) if isinstance(audience, list | tuple) else (audience,)
        cluster_id = output(platform_out, "kubernetes_cluster_id", PLATFORM_ROOT)
        subscription = cluster_id.split("/")[2] if cluster_id.count("/") >= 2 else ""
        vault_id = (
            f"/subscriptions/{subscription}/resourceGroups/{output(env_out, 'resource_group_name', ENVIRONMENT_ROOT)}"
            f"/providers/Microsoft.KeyVault/vaults/{output(env_out, 'key_vault_name', ENVIRONMENT_ROOT)}"
        )
        roles = self.azure.role_names(vault_id, output(env_out, "workload_identity_principal_id", ENVIRONMENT_ROOT))
        return identity.IdentityFacts(
            cluster_oidc_issuer=output(platform_out, "oidc_issuer_url", PLATFORM_ROOT),
            client_id=output(env_out, "workload_identity_client_id", ENVIRONMENT_ROOT),
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
        broker_ip, config_ip = lb_address(broker_svc), lb_address(ingress)
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
        write_json(self.layout.settings_file, self.settings)
        return {"environment": self.env, "destroyed": lines, "terraform": plan.as_dict()}
