"""The rollout wait and the workload identity check, against FakeKubernetes fed with real-shaped status objects.

These show iotctl's decisions (what is ready, what failed, which fix to print); only a real cluster shows that
ArgoCD and ESO really reach those states.
"""

from __future__ import annotations

import pytest

from iotctl.deploy import identity, rollout
from tests.aks.fake_kubernetes import FakeKubernetes, load

ISSUER = "https://westeurope.oic.prod-aks.azure.com/72f988bf/1a2b3c/"
CLIENT_ID = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


class Clock:
    """Virtual time: `sleep` advances it, so a 10-minute wait takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait(cluster, timeout_s=600.0):
    clock, seen = Clock(), []
    try:
        checks = rollout.wait(
            cluster, "prod", timeout_s, poll_s=5, on_change=seen.append, clock=clock, sleep=clock.sleep
        )
    except rollout.RolloutFailed as exc:
        return exc, seen, clock
    return checks, seen, clock


def test_waits_through_progressing_until_synced_healthy_and_secrets_ready():
    cluster = FakeKubernetes(script=[load("syncing"), [], [], load("healthy")])
    checks, seen, clock = _wait(cluster)
    assert all(c.ready for c in checks)
    assert {c.what for c in checks} == {
        "Application argocd/iots6-prod",
        "SecretStore iots6-prod/iots6-keyvault",
        "ExternalSecret iots6-prod/iots6-database",
        "ExternalSecret iots6-prod/iots6-mqtt",
    }
    # The progress view was told about the first state and the last, and nothing twice in a row.
    assert seen[0][0].state == "OutOfSync/Progressing" and seen[-1] == checks
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False))
    assert clock.now == 15  # four looks, five seconds apart


def test_aadsts70021_is_named_with_the_federated_credential_fix():
    cluster = FakeKubernetes(script=[load("aadsts70021")])
    exc, _, clock = _wait(cluster, timeout_s=60)
    assert isinstance(exc, rollout.RolloutFailed) and clock.now >= 60
    message = str(exc)
    assert message.startswith("environment `prod` is not ready after 60 s: SecretStore iots6-prod/iots6-keyvault")
    assert "AADSTS70021" in message and "system:serviceaccount:iots6-prod:iots6-secrets" in message
    by_what = {c.what: c for c in exc.checks}
    pod = by_what["Pod iots6-prod/iots6-ingest-7d9c8b6f5-x2x9k (ingest)"]
    assert pod.state == "CreateContainerConfigError" and "ExternalSecrets" in pod.fix
    assert "exceeded its progress deadline" in by_what["Application argocd/iots6-prod"].message


def test_a_missing_image_says_build_and_push():
    exc, _, _ = _wait(FakeKubernetes(script=[load("image_missing")]), timeout_s=30)
    assert "ImagePullBackOff" in str(exc) and "build and push it" in str(exc)


def test_a_failed_sync_stops_the_wait_at_once_naming_the_failed_hook():
    exc, _, clock = _wait(FakeKubernetes(script=[load("sync_failed")]))
    assert isinstance(exc, rollout.RolloutFailed) and clock.now == 0, "a failed operation is terminal"
    assert "failed: Application argocd/iots6-prod is SyncFailed (Job/iots6-migrate:" in str(exc)


def _facts(**changes) -> identity.IdentityFacts:
    base = dict(
        cluster_oidc_issuer=ISSUER,
        client_id=CLIENT_ID,
        federated_credentials=(
            identity.FederatedCredential("eso-prod", ISSUER, "system:serviceaccount:iots6-prod:iots6-secrets"),
        ),
        vault_roles=("Key Vault Secrets User",),
        namespace="iots6-prod",
    )
    base.update(changes)
    return identity.IdentityFacts(**base)


def test_a_whole_identity_chain_has_no_findings():
    assert identity.check(_facts(), _cluster_with_sa()) == []


def _cluster_with_sa(annotation: str | None = CLIENT_ID, pod_label: str | None = None) -> FakeKubernetes:
    cluster = FakeKubernetes()
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "iots6-secrets", "namespace": "iots6-prod"},
    }
    if annotation:
        sa["metadata"]["annotations"] = {identity.CLIENT_ID_ANNOTATION: annotation}
    cluster.put(sa)
    if pod_label is not None:
        labels = {identity.USE_LABEL: pod_label} if pod_label else {}
        cluster.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "uses-identity", "namespace": "iots6-prod", "labels": labels},
                "spec": {"serviceAccountName": "iots6-secrets"},
            }
        )
    return cluster


@pytest.mark.parametrize(
    ("facts", "cluster", "link", "words"),
    [
        (
            _facts(
                federated_credentials=(
                    identity.FederatedCredential(
                        "x", ISSUER.rstrip("/"), "system:serviceaccount:iots6-prod:iots6-secrets"
                    ),
                )
            ),
            _cluster_with_sa(),
            "federated credential issuer",
            "differ only by the trailing `/`",
        ),
        (
            _facts(
                federated_credentials=(
                    identity.FederatedCredential("x", ISSUER, "system:serviceaccount:iots6-prod:default"),
                )
            ),
            _cluster_with_sa(),
            "federated credential subject",
            "found `system:serviceaccount:iots6-prod:default`",
        ),
        (
            _facts(
                federated_credentials=(
                    identity.FederatedCredential(
                        "x", ISSUER, "system:serviceaccount:iots6-prod:iots6-secrets", ("api://other",)
                    ),
                )
            ),
            _cluster_with_sa(),
            "federated credential audience",
            "api://AzureADTokenExchange",
        ),
        (
            _facts(),
            _cluster_with_sa(annotation=None),
            "service account annotation",
            "workloadIdentity.clientId",
        ),
        (_facts(), FakeKubernetes(), "service account", "does not exist"),
        (_facts(), _cluster_with_sa(pod_label=""), "pod label", 'azure.workload.identity/use: "true"'),
        (_facts(vault_roles=("Reader",)), _cluster_with_sa(), "vault role", "Key Vault Secrets User"),
    ],
)
def test_each_broken_link_is_named_with_its_fix(facts, cluster, link, words):
    findings = identity.check(facts, cluster)
    assert [f.link for f in findings] == [link]
    assert words in findings[0].sentence()
    assert identity.summary(findings).startswith(f"the workload identity chain is broken at {link}:")
