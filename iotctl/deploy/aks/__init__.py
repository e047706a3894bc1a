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

Also: the plan-only path, a status view, the checks alone, a destroy path that names what goes and wants the
environment's name typed, and the migration Job that ``iotctl db migrate --env <aks env>`` runs.

The package: :mod:`.flow` (the steps, :class:`AksDeployment`), :mod:`.model` (request, hooks, on-disk layout),
:mod:`.gitops` (pure helpers: outputs, plans, the GitOps render, images), :mod:`.jobs` (the vault target and the
migration Job, for other commands).

No typer, no rich: typed errors, data back. Nothing secret is returned, recorded or logged: Terraform's sensitive
outputs are dropped by :class:`~iotctl.deploy.terraform.TerraformRoot`, vault values go from the generator to the
vault, and the Kubernetes token lives only in the 0600 kubeconfig.
"""

from iotctl.deploy.aks.flow import AksDeployment
from iotctl.deploy.aks.jobs import MigrationRun, VaultTarget, run_migration_job, vault_target
from iotctl.deploy.aks.model import (
    ENVIRONMENTS,
    AksRequest,
    Hooks,
    IdentityBroken,
    ImageCheck,
    ImagesMissing,
    Layout,
    parse_backend_config,
    write_kubeconfig,
)

__all__ = [
    "ENVIRONMENTS",
    "AksDeployment",
    "AksRequest",
    "Hooks",
    "IdentityBroken",
    "ImageCheck",
    "ImagesMissing",
    "Layout",
    "MigrationRun",
    "VaultTarget",
    "parse_backend_config",
    "run_migration_job",
    "vault_target",
    "write_kubeconfig",
]
