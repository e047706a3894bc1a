"""A real Helm chart repository on 127.0.0.1, serving stand-ins for the upstream argo-cd and external-secrets charts.

The upstream repositories cannot be reached here. The stand-ins carry the names and pinned versions of
iotctl.deploy.addons and the shapes that matter to iotctl's installer — CRDs in ``templates/`` (argo-cd) and in
``crds/`` (external-secrets), a Deployment rendered without a namespace, a StatefulSet, a Helm hook Job, a test hook,
a cluster-scoped webhook configuration, a value iotctl sets (``dex.enabled``) — and nothing else. They are packaged
and indexed by real Helm (helm-python-sdk) and pulled by iotctl over HTTP like any chart repository. Whether the
real charts install and run is for a real cluster to show.
"""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass
from pathlib import Path

from iotctl.deploy import addons

_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{kind: {kind}, plural: {plural}, singular: {singular}, listKind: {kind}List}}
  scope: Namespaced
  versions:
    - name: {version}
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""

_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
{namespace}spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: "example.invalid/{name}:stand-in"}}]
"""

ARGO_FILES = {
    "templates/crds.yaml": _CRD.format(
        plural="applications", group="argoproj.io", kind="Application", singular="application", version="v1alpha1"
    )
    + "---\n"
    + _CRD.format(
        plural="applicationsets",
        group="argoproj.io",
        kind="ApplicationSet",
        singular="applicationset",
        version="v1alpha1",
    ),
    "templates/server.yaml": _DEPLOYMENT.format(
        name="argocd-server", namespace="  namespace: {{ .Release.Namespace }}\n"
    )
    + "---\n"
    + _DEPLOYMENT.format(name="argocd-applicationset-controller", namespace=""),
    "templates/controller.yaml": """apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: argocd-application-controller
  namespace: {{ .Release.Namespace }}
spec:
  replicas: 1
  serviceName: argocd-application-controller
  selector: {matchLabels: {app: argocd-application-controller}}
  template:
    metadata: {labels: {app: argocd-application-controller}}
    spec:
      containers: [{name: main, image: "example.invalid/argocd:stand-in"}]
""",
    "templates/dex.yaml": "{{- if .Values.dex.enabled }}\n"
    + _DEPLOYMENT.format(name="argocd-dex-server", namespace="")
    + "{{- end }}\n",
    "templates/redis-secret-init.yaml": """apiVersion: batch/v1
kind: Job
metadata:
  name: argocd-redis-secret-init
  namespace: {{ .Release.Namespace }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: init, image: "example.invalid/argocd:stand-in"}]
""",
    "templates/tests/test.yaml": """apiVersion: v1
kind: Pod
metadata:
  name: argocd-test
  annotations: {helm.sh/hook: test}
spec:
  containers: [{name: t, image: "example.invalid/t:stand-in"}]
""",
    "values.yaml": "dex:\n  enabled: true\nnotifications:\n  enabled: true\n",
}

ESO_FILES = {
    "crds/secretstores.yaml": _CRD.format(
        plural="secretstores", group="external-secrets.io", kind="SecretStore", singular="secretstore", version="v1"
    ),
    "templates/crds.yaml": "{{- if .Values.installCRDs }}\n"
    + _CRD.format(
        plural="externalsecrets",
        group="external-secrets.io",
        kind="ExternalSecret",
        singular="externalsecret",
        version="v1",
    )
    + "{{- end }}\n",
    "templates/deployments.yaml": _DEPLOYMENT.format(
        name="external-secrets", namespace="  namespace: {{ .Release.Namespace }}\n"
    )
    + "---\n"
    + _DEPLOYMENT.format(name="external-secrets-webhook", namespace="  namespace: {{ .Release.Namespace }}\n"),
    "templates/webhook.yaml": """apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: secretstore-validate
webhooks: []
""",
    "values.yaml": "installCRDs: false\n",
}


@dataclass
class ChartRepository:
    url: str
    directory: Path
    requests: list[str]
    _server: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _write_chart(base: Path, addon: addons.Addon, files: dict[str, str]) -> Path:
    chart = base / addon.chart
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {addon.chart}\nversion: {addon.version}\n"
        "description: Test stand-in (tests/aks/chart_repo.py), not the upstream chart.\n"
    )
    for name, text in files.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    return chart


def start_chart_repository(tmp: Path) -> ChartRepository:
    import helm_python

    helm_python.disable_logging()
    sources, repo = tmp / "chart-sources", tmp / "chart-repo"
    repo.mkdir(parents=True)
    for addon, files in ((addons.ARGOCD, ARGO_FILES), (addons.EXTERNAL_SECRETS, ESO_FILES)):
        helm_python.package(_write_chart(sources, addon, files), destination=repo)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(repo)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(repo, base_url=url)
    threading.Thread(target=server.serve_forever, name="ChartRepository", daemon=True).start()
    return ChartRepository(url, repo, requests, server)
