"""The iots6 chart (infra/helm/iots6), rendered with real Helm v4 for every environment exactly as its Argo CD
Application would render it (conftest.env_values), and checked object by object.

What this shows: the templates, schema and values are consistent; every rendered core object is valid Kubernetes
at the AKS version (kubernetes-validate --strict) and every custom resource matches its CRD schema; the security
and operability rules hold for every container. What it cannot show (no API server here): that the cluster
admits, schedules and runs them; see docs/deploy-aks.md.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from .conftest import AKS_KUBERNETES_VERSION, CHART, ENVIRONMENTS, ROOT, deep_merge, env_values, helm

CRD_KINDS = {"ExternalSecret", "SecretStore", "PodMonitor"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def _pods(docs):
    for d in docs:
        if d["kind"] in WORKLOADS:
            yield d, d["spec"]["template"]["spec"]


def _by(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# ------------------------------------------------------------------------------------------ lint and schema
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lint_is_clean(env):
    report = helm().lint(
        CHART, env_values(env), strict=True, namespace=f"iots6-{env}", kube_version=f"v{AKS_KUBERNETES_VERSION}"
    )
    assert not report["errors"], report["errors"]
    assert all(m["severity"] < 2 for m in report["messages"]), report["messages"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("ingest:\n  replica: 2\n", "additional properties 'replica' not allowed"),
        ("mosquitto:\n  tlsPort: '8883'\n", "got string, want integer"),
        ("ingest:\n  port: 0\n", "at '/ingest/port': minimum"),
        ("images:\n  ingest:\n    repository: iots6-ingest\n    digest: latest\n", "does not match pattern"),
        ("ingest:\n  replicas: 2\n", "shareGroup"),
        ("externalSecrets:\n  refreshInterval: hourly\n", "does not match pattern"),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "bad-digest", "replicas-without-share-group", "bad-interval"],
)
def test_schema_refuses_a_bad_values_file(tmp_path, bad, message):
    """A values file with a typo or a wrong type stops the render with a message naming the key."""
    h = helm()
    path = tmp_path / "values-bad.yaml"
    path.write_text(bad)
    values = deep_merge(env_values("dev"), h.values_from_yaml(path.read_text()))
    with h.Chart.load(CHART) as chart:
        with pytest.raises(h.HelmValuesError, match=re.escape(message)):
            chart.validate_schema(values)
        with pytest.raises(h.HelmValuesError):
            chart.render(values, name="iots6", namespace="iots6-dev")


def test_every_values_key_is_documented():
    """Each key of values.yaml has a comment above it, or sits in a block whose key has one."""
    undocumented, stack = [], []  # stack of (indent, documented)
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        key = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if key:
            indent = len(key.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = previous.lstrip().startswith("#") or any(d for _, d in stack)
            if not documented:
                undocumented.append(key.group(2))
            stack.append((indent, documented))
        if line.strip():
            previous = line
    assert not undocumented, f"values.yaml keys without a comment: {undocumented}"


def test_prod_refuses_images_without_digests():
    h = helm()
    with h.Chart.load(CHART) as chart, pytest.raises(h.HelmRenderError, match=r"images\.\w+\.digest is empty"):
        chart.render(env_values("prod", promoted=False), name="iots6", namespace="iots6-prod")


# ------------------------------------------------------------------------------------------ rendered objects
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_container_is_bounded_probed_and_unprivileged(rendered, env):
    for workload, pod in _pods(rendered[env]):
        where = f"{env} {workload['kind']}/{workload['metadata']['name']}"
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0, where
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod.get("initContainers", []) + pod["containers"]:
            name = f"{where} container {container['name']}"
            for part in ("requests", "limits"):
                assert set(container["resources"][part]) >= {"cpu", "memory"}, f"{name}: {part}"
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
        if workload["kind"] != "Job":  # a Job's containers run to completion: nothing to probe
            for container in pod["containers"]:
                name = f"{where} container {container['name']}"
                assert "livenessProbe" in container and "readinessProbe" in container, name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_images_are_registry_repository_tag(rendered, env):
    pattern = r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9_.-]+(@sha256:[a-f0-9]{64})?$"
    images = {c["image"] for _, pod in _pods(rendered[env]) for c in pod.get("initContainers", []) + pod["containers"]}
    assert images
    for image in images:
        assert re.match(pattern, image), image
        if env == "prod":
            assert "@sha256:" in image, f"prod runs {image} without a digest"
    ours = {i for i in images if "/iots6-" in i}
    assert {i.split("/")[1].split(":")[0] for i in ours} == {"iots6-ingest", "iots6-config-server", "iots6-migrate"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_values_anywhere(rendered, env):
    """No Secret object is rendered (External Secrets makes them), and no secret-looking env var has a literal."""
    docs = rendered[env]
    assert not [d for d in docs if d["kind"] == "Secret"]
    for _, pod in _pods(docs):
        for container in pod.get("initContainers", []) + pod["containers"]:
            for var in container.get("env", []):
                if re.search(r"(PASSWORD|TOKEN|_KEY)$", var["name"]):
                    assert "value" not in var, f"{container['name']}: {var['name']} has a literal value"
    text = json.dumps(docs)
    assert "BEGIN" not in text and "PRIVATE KEY" not in text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_consumed_secret_comes_from_key_vault(rendered, env):
    docs = rendered[env]
    consumed: set[str] = set()
    for _, pod in _pods(docs):
        for volume in pod["volumes"]:
            if "secret" in volume:
                consumed.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    consumed.add(source["secret"]["name"])
        for container in pod.get("initContainers", []) + pod["containers"]:
            for var in container.get("env", []):
                if "secretKeyRef" in var.get("valueFrom", {}):
                    consumed.add(var["valueFrom"]["secretKeyRef"]["name"])
    for ingress in _by(docs, "Ingress").values():
        consumed |= {t["secretName"] for t in ingress["spec"].get("tls", [])}
    published = {
        (p["path"], p["pathType"])
        for rule in _by(docs, "Ingress")["iots6-config-server"]["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    # what the VM's nginx publishes too: never /metrics, never a catch-all
    assert published == {("/v1/", "Prefix"), ("/openapi.json", "Exact"), ("/healthz", "Exact")}, published
    externals = _by(docs, "ExternalSecret")
    assert consumed == {e["spec"]["target"]["name"] for e in externals.values()}
    remote = {item["remoteRef"]["key"] for e in externals.values() for item in e["spec"]["data"]}
    decided = {  # DECISIONS.md §6, plus postgres-grafana-password (docs/deploy-aks.md)
        "postgres-admin-password", "postgres-app-password", "postgres-grafana-password", "mqtt-admin-password",
        "mqtt-ingest-password", "mqtt-config-password", "mqtt-operator-password", "config-admin-token",
        "grafana-admin-password", "tls-ca-crt", "tls-broker-crt", "tls-broker-key", "tls-config-crt", "tls-config-key",
    }  # fmt: skip
    assert remote == decided
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", key) for key in remote)
    for external in externals.values():
        assert external["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "iots6-keyvault"}
        assert external["spec"]["refreshInterval"] == env_values(env)["externalSecrets"]["refreshInterval"]
    (store,) = _by(docs, "SecretStore").values()
    azure = store["spec"]["provider"]["azurekv"]
    assert azure["authType"] == "WorkloadIdentity" and azure["serviceAccountRef"] == {"name": "iots6-secrets"}
    account = _by(docs, "ServiceAccount")["iots6-secrets"]
    assert re.fullmatch(r"[0-9a-f-]{36}", account["metadata"]["annotations"]["azure.workload.identity/client-id"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_policies_admit_only_the_planned_flows(rendered, env):
    docs = rendered[env]
    policies = _by(docs, "NetworkPolicy")
    deny = policies["iots6-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    # The only ingress rule without `from` (any source) is the broker's TLS port.
    open_ports = [
        (name, p["port"]) for name, pol in policies.items() for rule in pol["spec"].get("ingress", [])
        if "from" not in rule for p in rule["ports"]
    ]  # fmt: skip
    assert open_ports == [("iots6-mosquitto", 8883)]
    # Exposed Services: the broker's TLS port only.
    exposed = [
        (n, p["port"])
        for n, s in _by(docs, "Service").items()
        if s["spec"].get("type", "ClusterIP") != "ClusterIP"
        for p in s["spec"]["ports"]
    ]
    assert exposed == [("iots6-mosquitto-tls", 8883)]
    # The broker's plaintext port: ingest and config server only.
    (internal,) = [r for r in policies["iots6-mosquitto"]["spec"]["ingress"] if "from" in r]
    assert {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in internal["from"]} == {
        "ingest",
        "config-server",
    }
    # Egress to the database: the services, the migration Job and Grafana (read-only role), nothing else.
    to_db = policies["iots6-to-database"]["spec"]
    assert set(to_db["podSelector"]["matchExpressions"][0]["values"]) == {
        "ingest",
        "config-server",
        "migrate",
        "grafana",
    }
    if env == "dev":
        (rule,) = policies["iots6-postgresql"]["spec"]["ingress"]
        assert {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]} == {
            "ingest",
            "config-server",
            "migrate",
            "grafana",
        }
    else:
        (rule,) = to_db["egress"]
        assert rule["to"] == [{"ipBlock": {"cidr": env_values(env)["database"]["egressCidr"]}}]


def test_prod_has_budgets_spread_and_more_storage(rendered):
    prod, dev = rendered["prod"], rendered["dev"]
    budgets = _by(prod, "PodDisruptionBudget")
    assert set(budgets) == {"iots6-config-server", "iots6-mosquitto"}
    assert not _by(dev, "PodDisruptionBudget")
    config = _by(prod, "Deployment")["iots6-config-server"]
    assert config["spec"]["replicas"] == 3
    anti = config["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"

    def broker_storage(docs):
        sts = _by(docs, "StatefulSet")["iots6-mosquitto"]
        return sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]

    assert broker_storage(prod) == "20Gi" and broker_storage(dev) == "2Gi"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_migrations_run_before_the_services_roll(rendered, env):
    docs = rendered[env]
    (job,) = _by(docs, "Job").values()
    notes = job["metadata"]["annotations"]
    assert notes["argocd.argoproj.io/hook"] == "Sync" and notes["helm.sh/hook"] == "post-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "args" not in container and "command" not in container, "the image's entry point is iots6-migrate"
    assert {e["name"] for e in container["env"]} == {"MIGRATE_DATABASE_URL", "MIGRATE_DATABASE_PASSWORD_FILE"}

    def wave(d):
        return int(d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))

    assert max(wave(d) for d in docs if d["kind"] in {"ExternalSecret", "SecretStore"}) < wave(job)
    for kind in ("Deployment", "StatefulSet"):
        for d in _by(docs, kind).values():
            expected = -1 if d["metadata"]["name"] == "iots6-postgresql" else 1
            assert wave(d) == expected and (wave(d) < wave(job)) == (expected < 0), d["metadata"]["name"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metrics_are_scraped_by_managed_prometheus(rendered, env):
    monitors = _by(rendered[env], "PodMonitor")
    assert set(monitors) == {"iots6-ingest", "iots6-config-server"}
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"


def test_service_variables_are_spelled_in_one_place():
    """DECISIONS.md §2: INGEST_*, CONFIG_SERVER_* and IOTCTL_DATABASE_* appear only in _helpers.tpl."""
    for path in (CHART / "templates").rglob("*"):
        if path.is_file() and path.name != "_helpers.tpl":
            assert not re.search(r"\b(INGEST|CONFIG_SERVER|IOTCTL)_[A-Z_]+", path.read_text()), path


# ------------------------------------------------------------------------------------------ one copy of dashboards
def test_dashboards_exist_once_in_the_repository(rendered):
    link = CHART / "files" / "grafana"
    assert link.is_symlink() and link.resolve() == (ROOT / "infra" / "grafana").resolve()
    tracked = subprocess.run(["git", "ls-files", "*.json"], cwd=ROOT, capture_output=True, text=True, check=True)
    uids = {}
    for name in tracked.stdout.split():
        try:
            uid = json.loads((ROOT / name).read_text()).get("uid")
        except (ValueError, AttributeError):
            continue
        if isinstance(uid, str) and uid.startswith("iots6-"):
            uids.setdefault(uid, []).append(name)
    assert uids and all(len(paths) == 1 for paths in uids.values()), uids
    maps = _by(rendered["dev"], "ConfigMap")
    dashboards = maps["iots6-grafana-dashboards"]["data"]
    source = ROOT / "infra" / "grafana"
    assert {k: json.loads(v) for k, v in dashboards.items()} == {
        p.name: json.loads(p.read_text()) for p in (source / "dashboards").glob("*.json")
    }
    provisioning = maps["iots6-grafana-provisioning"]["data"]
    assert (
        provisioning["timescaledb.yaml"].strip()
        == (source / "provisioning/datasources/timescaledb.yaml").read_text().strip()
    )
    assert (
        provisioning["dashboards.yaml"].strip() == (source / "provisioning/dashboards/iots6.yaml").read_text().strip()
    )
    compose_prom = yaml.safe_load((source / "provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
    chart_prom = yaml.safe_load(
        _by(rendered["staging"], "ConfigMap")["iots6-grafana-provisioning"]["data"]["prometheus.yaml"]
    )
    (ds,) = chart_prom["datasources"]
    assert (ds["uid"], ds["name"], ds["type"]) == (compose_prom["uid"], compose_prom["name"], compose_prom["type"])


# ------------------------------------------------------------------------------------------ schemas
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_core_objects_are_valid_kubernetes(rendered, env, tmp_path):
    try:
        import kubernetes_validate
    except ImportError:
        from .conftest import missing_tool

        missing_tool("`kubernetes-validate` is not installed; run `make install` (it is a dev dependency).")
    core = [d for d in rendered[env] if d["kind"] not in CRD_KINDS]
    assert len(core) > 25
    failures = []
    for doc in core:
        try:
            kubernetes_validate.validate(doc, AKS_KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not failures, failures


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_custom_resources_match_their_crd_schemas(rendered, env, crd_validator):
    objects = [d for d in rendered[env] if d["kind"] in CRD_KINDS]
    errors = crd_validator(objects)
    assert len(errors) == len(objects) >= 9
    assert {k: e for k, e in errors.items() if e} == {}
