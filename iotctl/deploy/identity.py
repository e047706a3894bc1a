"""Check an environment's workload identity chain before waiting on it.

External Secrets reads Key Vault as the environment's user-assigned identity through this chain; a break anywhere
shows up only as an ExternalSecret stuck in ``SecretSyncedError`` with AADSTS70021 or a 401/403, which is why most
such reports take hours. Each link is checked here and each broken one is named with its fix:

1. the federated credential's **issuer** is the cluster's OIDC issuer, exactly (AKS issuers end in ``/``);
2. its **subject** is ``system:serviceaccount:<namespace>:<service account>`` of the SecretStore's service account;
3. its **audience** is ``api://AzureADTokenExchange``;
4. that service account exists and carries ``azure.workload.identity/client-id`` = the identity's client id;
5. every pod that runs as that service account carries the label ``azure.workload.identity/use: "true"`` (without
   it the webhook injects no token);
6. the identity holds a role that can read secrets on the vault.

The Azure side (1-3, 6) comes from Terraform's outputs, the cluster side (4-5) through a
:class:`~iotctl.deploy.cluster.Cluster`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iotctl.deploy.cluster import Cluster

AUDIENCE = "api://AzureADTokenExchange"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
USE_LABEL = "azure.workload.identity/use"
SECRET_READING_ROLES = ("Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Administrator")


@dataclass(frozen=True)
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (AUDIENCE,)


@dataclass(frozen=True)
class IdentityFacts:
    """What Terraform (or Azure) says about the environment's identity."""

    cluster_oidc_issuer: str
    client_id: str
    federated_credentials: tuple[FederatedCredential, ...]
    vault_roles: tuple[str, ...]  # role definition names the identity holds on the vault
    namespace: str
    service_account: str = "iots6-secrets"


@dataclass(frozen=True)
class Finding:
    link: str
    problem: str
    fix: str

    def sentence(self) -> str:
        return f"{self.link}: {self.problem}; {self.fix}."


def check(facts: IdentityFacts, cluster: Cluster) -> list[Finding]:
    """Every broken link of the chain (an empty list: the chain is whole)."""
    findings: list[Finding] = []
    subject = f"system:serviceaccount:{facts.namespace}:{facts.service_account}"
    matching = [fc for fc in facts.federated_credentials if fc.subject == subject]
    if not matching:
        seen = ", ".join(f"`{fc.subject}`" for fc in facts.federated_credentials) or "none"
        findings.append(
            Finding(
                "federated credential subject",
                f"no federated credential has subject `{subject}` (found {seen})",
                "set the credential's subject to exactly that (Terraform variable namespace/service account)",
            )
        )
    for fc in matching:
        if fc.issuer != facts.cluster_oidc_issuer:
            hint = (
                " (they differ only by the trailing `/`)"
                if fc.issuer.rstrip("/") == facts.cluster_oidc_issuer.rstrip("/")
                else ""
            )
            findings.append(
                Finding(
                    "federated credential issuer",
                    f"`{fc.name}` trusts issuer `{fc.issuer}` but the cluster's OIDC issuer is "
                    f"`{facts.cluster_oidc_issuer}`{hint}",
                    "use the cluster's `oidc_issuer_url` output verbatim",
                )
            )
        if AUDIENCE not in fc.audiences:
            findings.append(
                Finding(
                    "federated credential audience",
                    f"`{fc.name}` has audiences {list(fc.audiences)}",
                    f"set the audience to `{AUDIENCE}`",
                )
            )
    sa = cluster.get("v1", "ServiceAccount", name=facts.service_account, namespace=facts.namespace)
    if sa is None:
        findings.append(
            Finding(
                "service account",
                f"`{facts.namespace}/{facts.service_account}` does not exist",
                "sync the environment's Application (the chart creates it)",
            )
        )
    else:
        annotated = ((sa.get("metadata") or {}).get("annotations") or {}).get(CLIENT_ID_ANNOTATION)
        if annotated != facts.client_id:
            findings.append(
                Finding(
                    "service account annotation",
                    f"`{facts.namespace}/{facts.service_account}` has `{CLIENT_ID_ANNOTATION}: {annotated}`, "
                    f"the identity's client id is `{facts.client_id}`",
                    "set `workloadIdentity.clientId` (the ApplicationSet's Terraform parameter) to that client id",
                )
            )
    for pod in cluster.list("v1", "Pod", namespace=facts.namespace):
        spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
        if spec.get("serviceAccountName") != facts.service_account:
            continue
        if (meta.get("labels") or {}).get(USE_LABEL) != "true":
            findings.append(
                Finding(
                    "pod label",
                    f"pod `{facts.namespace}/{meta.get('name')}` runs as `{facts.service_account}` without "
                    f'`{USE_LABEL}: "true"`',
                    "add the label to its pod template so the webhook injects the token",
                )
            )
    if not set(facts.vault_roles) & set(SECRET_READING_ROLES):
        findings.append(
            Finding(
                "vault role",
                f"the identity holds {list(facts.vault_roles) or 'no role'} on the vault",
                "assign `Key Vault Secrets User` on the vault to the identity's principal",
            )
        )
    return findings


def summary(findings: Sequence[Finding]) -> str:
    """One sentence for an error: the first broken link and how many more there are."""
    first = findings[0].sentence().rstrip(".")
    more = f" (and {len(findings) - 1} more: `iotctl deploy aks --check` lists them)" if len(findings) > 1 else ""
    return f"the workload identity chain is broken at {first}{more}."
