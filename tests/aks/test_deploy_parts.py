"""The parts of `deploy aks` one at a time: the add-on installer (real Helm v4 pulling from a loopback chart
repository, FakeKubernetes at the cluster boundary), the Azure calls (the fakes of fake_azure.py over TLS), the
kubeconfig as the official Kubernetes client reads it, the metrics settings merge, the GitOps elements of several
environments, the Key Vault credentials of a registered environment and the migration Job."""

from __future__ import annotations

import base64
import json

import pytest

from iotctl.deploy import addons
from iotctl.deploy.aks import AksDeployment, AksRequest, Hooks, parse_backend_config, run_migration_job
from iotctl.deploy.azure import Azure, detect_public_address, parse_cidrs
from iotctl.errors import AuthRefused, InvalidInput, NotFound, OperationFailed, Unreachable
from tests.aks.conftest import CLUSTER_ID, OPERATOR_ADDRESS, SUBSCRIPTION
from tests.aks.fake_kubernetes import FakeKubernetes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------------------------------------ add-ons
def test_addons_are_applied_in_order_with_crds_established_first(chart_repo, tmp_path):
    cluster = FakeKubernetes(controllers=True)
    clock = Clock()
    lines: list[str] = []
    results = [
        addons.install(
            cluster, addon, tmp_path / "charts", chart_repo.url, progress=lines.append, clock=clock, sleep=clock.sleep
        )
        for addon in addons.ADDONS
    ]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in cluster.applied]
    assert kinds[0] == ("Namespace", "argocd")
    first_crd = kinds.index(("CustomResourceDefinition", "applications.argoproj.io"))
    assert first_crd < kinds.index(("Deployment", "argocd-server")), "CRDs before what may use them"
    assert ("CustomResourceDefinition", "secretstores.external-secrets.io") in kinds, "crds/ of a chart too"
    assert ("CustomResourceDefinition", "externalsecrets.external-secrets.io") in kinds, "installCRDs reached it"
    by_name = {o["metadata"]["name"]: o for o in cluster.applied}
    assert by_name["argocd-applicationset-controller"]["metadata"]["namespace"] == "argocd", "namespace defaulted"
    assert "namespace" not in by_name["secretstore-validate"]["metadata"], "cluster-scoped stays so"
    assert set(results[0].workloads) == {
        "Deployment/argocd/argocd-server",
        "Deployment/argocd/argocd-applicationset-controller",
        "StatefulSet/argocd/argocd-application-controller",
    }
    assert "Argo CD 10.9.0: applying" in lines[0]
    # A second install pulls nothing (cached), deletes the hook Job first (before-hook-creation), applies again.
    pulled = len(chart_repo.requests)
    addons.install(cluster, addons.ARGOCD, tmp_path / "charts", chart_repo.url, clock=clock, sleep=clock.sleep)
    assert len(chart_repo.requests) == pulled
    assert ("batch/v1", "Job", "argocd", "argocd-redis-secret-init") in cluster.deleted


def test_a_workload_that_never_gets_ready_is_named(chart_repo, tmp_path):
    cluster = FakeKubernetes(controllers=False)
    clock = Clock()
    with pytest.raises(OperationFailed) as caught:
        addons.install(cluster, addons.ARGOCD, tmp_path, chart_repo.url, timeout_s=30, clock=clock, sleep=clock.sleep)
    assert str(caught.value).startswith("Argo CD's CRDs: CustomResourceDefinition/applications.argoproj.io is not")
    assert "`kubectl describe crd applications.argoproj.io` says why" in str(caught.value)


def test_an_unreachable_chart_repository_is_one_sentence(tmp_path):
    from iotctl.stack.procs import free_port

    with pytest.raises(Unreachable, match=r"chart `argo-cd` 10.9.0 could not be pulled from `http://127.0.0.1:\d+`"):
        addons.fetch(addons.ARGOCD, tmp_path, f"http://127.0.0.1:{free_port()}")


# ------------------------------------------------------------------------------------------------ Azure
def test_kubeconfig_is_what_the_kubernetes_client_reads(cloud, tmp_path):
    from kubernetes import client, config

    from iotctl.deploy.aks import write_kubeconfig

    ca = base64.b64encode(cloud.ca_cert.read_bytes()).decode()
    cloud.arm.clusters[CLUSTER_ID] = {"server": "https://aks-1.hcp.westeurope.azmk8s.io:443", "ca_data": ca}
    azure = Azure()
    endpoint = azure.cluster_endpoint(CLUSTER_ID)
    token = azure.kubernetes_token()
    path = write_kubeconfig(tmp_path / "kubeconfig", "aks-iots6", endpoint.server, endpoint.ca_data, token)
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://aks-1.hcp.westeurope.azmk8s.io:443"
    assert configuration.api_key["BearerToken"] == f"Bearer {token}"
    with open(configuration.ssl_ca_cert) as fh:
        assert fh.read() == cloud.ca_cert.read_text()
    assert cloud.vault.token_scopes[token] == "6dae42f8-4368-4678-94ff-3960e28e3630/.default"


def test_role_names_and_arm_errors(cloud):
    principal = "9d8c7b6a-5f4e-3d2c-1b0a-998877665544"
    rg = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-iots6-dev-weu"
    cloud.arm.assignments[principal] = [(rg, "Key Vault Secrets User"), ("/subscriptions/other", "Owner")]
    vault_id = f"{rg}/providers/Microsoft.KeyVault/vaults/kv-1"
    azure = Azure()
    assert azure.role_names(vault_id, principal) == ("Key Vault Secrets User",)
    assert azure.role_names(vault_id, "someone-else") == ()
    with pytest.raises(NotFound, match=r"AKS cluster `nope` does not exist .*; you need `Azure Kubernetes Service"):
        azure.cluster_endpoint(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/x/providers/x/managedClusters/nope")
    cloud.arm.forbid = True
    with pytest.raises(AuthRefused, match=r"role assignments on `kv-1` refused your identity \(HTTP 403\); you need"):
        Azure().role_names(vault_id, principal)


def test_registry_lookups_use_a_pull_token_per_repository(cloud):
    cloud.acr.images.add(("iots6-ingest", "sha-1a2b3c"))
    registry = Azure().registry("iots6acr.azurecr.io", cloud.vault.tenant_id)
    assert registry.manifest_exists("iots6-ingest", "sha-1a2b3c")
    assert not registry.manifest_exists("iots6-ingest", "sha-000000")
    assert [p for m, p in cloud.acr.requests if m == "POST"].count("/oauth2/exchange") == 1, "one exchange per run"


def test_the_operators_address_and_cidrs(cloud, monkeypatch):
    assert detect_public_address() == f"{OPERATOR_ADDRESS}/32" and cloud.echo_requests == ["/"]
    assert parse_cidrs(["20.1.2.3", "10.0.0.0/8,20.1.2.3/32", " "]) == ("20.1.2.3/32", "10.0.0.0/8")
    with pytest.raises(InvalidInput, match="`not-an-ip` is not an IP address or CIDR"):
        parse_cidrs(["not-an-ip"])
    monkeypatch.setenv("IOTCTL_AKS_IP_ECHO_URL", "https://nowhere.invalid/")
    with pytest.raises(Unreachable, match="pass it with --allow-cidr"):
        detect_public_address()


def test_backend_config_is_read_like_terraform_reads_it(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "aks" / "backend.hcl.example"
    assert parse_backend_config(example) == {
        "resource_group_name": "rg-iots6-tfstate",
        "storage_account_name": "stiots6tfstate12345",
        "container_name": "tfstate",
        "use_azuread_auth": "true",
    }
    bad = tmp_path / "backend.hcl"
    bad.write_text('key = ["a"]\n')
    with pytest.raises(InvalidInput, match='line 1 is not `key = "value"`'):
        parse_backend_config(bad)


# ------------------------------------------------------------------------------------------------ cluster objects
def test_metrics_settings_keep_the_namespaces_others_scrape(tmp_path):
    cluster = FakeKubernetes()
    deployment = AksDeployment(tmp_path, AksRequest(env="dev"), Hooks(), root=tmp_path)
    assert deployment.apply_metrics_settings(cluster) == "iots6-.*"
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ama-metrics-settings-configmap", "namespace": "kube-system"},
            "data": {"schema-version": "v1", "pod-annotation-based-scraping": 'podannotationnamespaceregex = "shop"'},
        }
    )
    assert deployment.apply_metrics_settings(cluster) == "shop|iots6-.*"
    assert "schema-version" not in cluster.applied[-1]["data"], "an operator's settings are left to them"
    cluster.put({**cluster.applied[-1]})
    assert deployment.apply_metrics_settings(cluster) == "shop|iots6-.*", "idempotent"


def test_deploying_staging_keeps_devs_element_and_destroying_dev_keeps_stagings(harness, cloud):
    from tests.aks.conftest import lb_status, terraform_config
    from tests.aks.fake_kubernetes import for_env, load

    harness.cli(*harness.deploy_args("dev", "--yes"))
    appset_key = ("argoproj.io/v1alpha1", "ApplicationSet", "argocd", "iots6")
    dev_element = harness.cluster.objects[appset_key]["spec"]["generators"][0]["list"]["elements"][0]
    harness.cluster.objects[appset_key]["spec"]["generators"][0]["list"]["elements"][0]["autoSync"] = False

    config = terraform_config(cloud, "staging")
    config["platform"] = terraform_config(cloud, "dev")["platform"]
    harness.terraform.configure({**terraform_config(cloud, "dev"), **config})
    cloud.arm.assignments["9d8c7b6a-5f4e-3d2c-1b0a-998877665544"].append(
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-iots6-staging-weu", "Key Vault Secrets User")
    )
    harness.cluster.polls = 0
    harness.cluster.script = [for_env(load("healthy"), "staging") + lb_status("staging")]
    harness.cli(*harness.deploy_args("staging", "--yes"))
    elements = harness.cluster.objects[appset_key]["spec"]["generators"][0]["list"]["elements"]
    assert [e["env"] for e in elements] == ["dev", "staging"]
    assert elements[0]["keyVaultUri"] == dev_element["keyVaultUri"] and elements[0]["autoSync"] is False
    assert elements[1]["postgresHost"] == "psql-iots6-staging-weu.postgres.database.azure.com"
    assert (elements[0]["postgresSubnetCidr"], elements[1]["postgresSubnetCidr"]) == ("", "10.40.9.0/24")
    project = harness.cluster.objects[("argoproj.io/v1alpha1", "AppProject", "argocd", "iots6")]
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["iots6-dev", "iots6-staging"]

    harness.cli("deploy", "aks", "--env", "dev", "--destroy", "--confirm-destroy", "dev")
    elements = harness.cluster.objects[appset_key]["spec"]["generators"][0]["list"]["elements"]
    assert [e["env"] for e in elements] == ["staging"]
    staging = json.loads(harness.cli("deploy", "aks", "--env", "staging", "--status", "--json").stdout)
    assert staging["application"]["health"] == "Healthy"


# ------------------------------------------------------------------------------------------------ environments
def test_a_registered_environment_reads_its_credentials_from_its_vault(harness, cloud):
    from iotctl.environments import MQTT_ADMIN, MQTT_OPERATOR, load

    harness.cli(*harness.deploy_args("dev", "--yes"))
    env = load(harness.state, "dev")
    assert env.secret(MQTT_OPERATOR) == cloud.vault.value("mqtt-operator-password")
    endpoint = env.admin_endpoint()
    assert (endpoint.username, endpoint.port, endpoint.tls, endpoint.ca_file) == ("admin", 8883, True, env.ca_file)
    assert cloud.vault.value("mqtt-admin-password") not in repr(endpoint)
    del cloud.vault.secrets[MQTT_ADMIN]
    with pytest.raises(NotFound, match=r"the broker admin password of environment `dev` is not in Key Vault"):
        env.secret(MQTT_ADMIN)
    with pytest.raises(OperationFailed, match=r"pass it as --database-url to `iotctl deploy aks --env dev`"):
        env.db_endpoint()


def test_database_url_for_provisioning_is_registered(harness, cloud):
    url = "postgresql://postgres@127.0.0.1:25432/iots6"
    harness.cli(*harness.deploy_args("dev", "--yes", "--database-url", url))
    from iotctl.environments import load

    env = load(harness.state, "dev")
    assert (env.database.access, env.database.url) == ("job", url)
    endpoint = env.db_endpoint()
    assert endpoint.url == url and endpoint.password == cloud.vault.value("postgres-admin-password")


def test_migration_job_is_a_copy_of_the_charts_and_its_failure_is_named(harness, cloud):
    harness.cli(*harness.deploy_args("dev", "--yes"))
    missing = harness.cli("db", "migrate", "--env", "dev", ok=False)
    assert (
        missing.exit_code == 7 and "the migration Job `iots6-dev/iots6-migrate` is not in the cluster" in missing.stderr
    )
    harness.cluster.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "iots6-migrate",
                "namespace": "iots6-dev",
                "uid": "1b0c4d2e",
                "labels": {"app.kubernetes.io/component": "migrate", "batch.kubernetes.io/controller-uid": "1b0c4d2e"},
                "annotations": {"argocd.argoproj.io/hook": "Sync"},
            },
            "spec": {
                "backoffLimit": 3,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "1b0c4d2e"}},
                "template": {
                    "metadata": {
                        "labels": {
                            "app.kubernetes.io/component": "migrate",
                            "batch.kubernetes.io/controller-uid": "1b0c4d2e",
                            "job-name": "iots6-migrate",
                        }
                    },
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "x/iots6-migrate"}]},
                },
            },
            "status": {"succeeded": 1},
        }
    )
    done = json.loads(harness.cli("db", "migrate", "--env", "dev", "--json").stdout)
    assert done["succeeded"] is True and done["job"].startswith("iots6-migrate-iotctl-")
    job = harness.cluster.applied[-1]
    assert job["metadata"]["labels"] == {"app.kubernetes.io/component": "migrate"}
    assert "selector" not in job["spec"] and job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert job["metadata"]["annotations"] == {"iots6.io/started-by": "iotctl db migrate"}
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "x/iots6-migrate"

    harness.cluster.failing_jobs = _AnyName()  # the next copy's name is not known in advance: fail any Job
    failed = harness.cli("db", "migrate", "--env", "dev", ok=False)
    assert failed.exit_code == 1
    assert "failed (Job has reached the specified backoff limit); read `kubectl -n iots6-dev logs job/" in failed.stderr


class _AnyName(set):
    def __contains__(self, _name) -> bool:
        return True


def test_migration_job_needs_a_deployment(tmp_path):
    with pytest.raises(NotFound, match=r"`dev` was not deployed by `iotctl deploy aks` on this machine"):
        run_migration_job(tmp_path, "dev")
