"""Helpers for the AKS chart and GitOps tests: real Helm v4 (helm-python-sdk), the pinned CRD schemas (npm), and a
stand-in for Argo CD's ApplicationSet rendering.

No Kubernetes API server, Argo CD or External Secrets controller exists here. What stands in for them:

* :func:`argocd_render` renders an ApplicationSet template for one list element the way Argo CD's goTemplate mode
  does (every string field is a Go text/template, ``missingkey=error``, then ``templatePatch`` merged in). It
  covers exactly the constructs our template uses (``{{ .key }}``, ``{{ if }}``/``{{ else }}``/``{{ end }}``, trim
  markers) and fails on anything else, so a new construct needs a line here first. test_gitops.py checks that its
  output equals Go's own text/template (Helm's engine) for every field.
* :func:`application_values` turns a generated Application's ``helm`` source (value files + parameters) into the
  values Argo CD would hand to ``helm template``.

A missing tool (the helm-python-sdk wheel, node/npm, checkov) skips a test on a laptop and fails it in CI
(``CI=true``), so CI never passes with a hole in it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.missing import missing

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "infra" / "helm" / "iots6"
GITOPS = ROOT / "infra" / "argocd"
HERE = Path(__file__).resolve().parent
ENVIRONMENTS = ("dev", "staging", "prod")


def _aks_kubernetes_version() -> str:
    """The Kubernetes version the platform's cluster runs: the default of Terraform's `kubernetes_version`
    (infra/terraform/aks/platform/variables.tf), so the chart is validated against the version Terraform creates."""
    import hcl2

    variables = hcl2.loads((ROOT / "infra" / "terraform" / "aks" / "platform" / "variables.tf").read_text())
    (minor,) = [v["kubernetes_version"]["default"] for v in variables["variable"] if "kubernetes_version" in v]
    while isinstance(minor, list):  # some hcl2 versions wrap attribute values in a list
        (minor,) = minor
    assert re.fullmatch(r"1\.\d+", minor), f"kubernetes_version default {minor!r} is not a minor version"
    return f"{minor}.0"


#: The Kubernetes version AKS runs for this platform (kubernetes-validate wants major.minor.patch).
AKS_KUBERNETES_VERSION = _aks_kubernetes_version()
NPM_CI_TIMEOUT_S = 300

#: What a promotion PR adds to values-prod.yaml (docs/deploy-aks.md, Promotion): the digests staging ran. Test data.
PROMOTED_DIGESTS = {
    "images": {
        name: {"digest": "sha256:" + digit * 64}
        for name, digit in (("ingest", "1"), ("configServer", "2"), ("migrate", "3"))
    }
}

collect_ignore_glob = ["node_modules/*"]


def missing_tool(message: str) -> None:
    """Skip on a developer machine, fail in CI: a test that cannot run there is a hole, not a pass."""
    missing(message)


def helm():
    try:
        import helm_python
    except ImportError:
        missing_tool("the `helm-python-sdk` wheel is not installed; run `make install` (it is a dev dependency).")
    helm_python.disable_logging()
    return helm_python


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# ------------------------------------------------------------------------------------------ Argo CD stand-in
class MissingKey(Exception):
    """Go's text/template with missingkey=error: `map has no entry for key`."""


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def go_template(text: str, params: dict[str, Any]) -> str:
    """Render ``text`` as Go's text/template would with ``params`` and missingkey=error (our constructs only)."""
    pieces: list[tuple[str, str]] = []  # ("text", s) | ("action", body)
    pos = 0
    for m in _ACTION.finditer(text):
        before = text[pos : m.start()]
        if m.group(1):
            before = before.rstrip(" \t\r\n")
        pieces.append(("text", before))
        pieces.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    pieces.append(("text", text[pos:]))

    def value(expr: str) -> Any:
        ref = re.fullmatch(r"\.(\w+)", expr)
        assert ref, f"unsupported template expression {expr!r}; extend go_template() in tests/infra/k8s/conftest.py"
        if ref.group(1) not in params:
            raise MissingKey(f'map has no entry for key "{ref.group(1)}"')
        return params[ref.group(1)]

    def show(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (condition, in_else)
    for kind, body in pieces:
        live = all(cond != in_else for cond, in_else in stack)
        if kind == "text":
            if live:
                out.append(body)
            continue
        if body.startswith("if "):
            stack.append((bool(value(body[3:].strip())) if live else False, False))
        elif body == "else":
            cond, _ = stack.pop()
            stack.append((cond, True))
        elif body == "end":
            stack.pop()
        elif live:
            out.append(show(value(body)))
    assert not stack, "unbalanced {{ if }} / {{ end }}"
    return "".join(out)


def _render_strings(node: Any, params: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return go_template(node, params)
    if isinstance(node, list):
        return [_render_strings(v, params) for v in node]
    if isinstance(node, dict):
        return {k: _render_strings(v, params) for k, v in node.items()}
    return node


def template_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, string) of every string in an Application template (what Argo CD renders field by field)."""
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in template_strings(v, f"{path}[{i}]")]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in template_strings(v, f"{path}.{k}" if path else k)]
    return []


def argocd_render(appset: dict) -> list[dict]:
    """The Applications Argo CD's ApplicationSet controller makes from ``appset`` (list generator, goTemplate)."""
    spec = appset["spec"]
    assert spec["goTemplate"] is True and "missingkey=error" in spec["goTemplateOptions"]
    (generator,) = spec["generators"]
    apps = []
    for element in generator["list"]["elements"]:
        app = _render_strings(copy.deepcopy(spec["template"]), element)
        if spec.get("templatePatch"):
            patch = yaml.safe_load(go_template(spec["templatePatch"], element)) or {}
            app = deep_merge(app, patch)
        app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **app}
        app["metadata"].setdefault("namespace", appset["metadata"]["namespace"])
        apps.append(app)
    return apps


# ------------------------------------------------------------------------------------------ rendering
def gitops_values(**overrides: Any) -> dict:
    """The documented example (infra/argocd/values-example.yaml) as test data, with overrides."""
    values = yaml.safe_load((GITOPS / "values-example.yaml").read_text())
    return deep_merge(values, overrides)


def render_chart(chart: Path, values: dict, *, name: str, namespace: str) -> list[dict]:
    h = helm()
    with h.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name=name, namespace=namespace, is_install=True)
    docs: list[dict] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(load_docs(rendered[path]))
    return docs


def _set_path(values: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def application_values(app: dict) -> dict:
    """What Argo CD passes to `helm template` for ``app``: its value files, then its parameters (--set-string)."""
    helm_source = app["spec"]["source"]["helm"]
    values: dict = {}
    for name in helm_source["valueFiles"]:
        path = ROOT / app["spec"]["source"]["path"] / name
        assert path.is_file(), f"{app['metadata']['name']}: value file {name} does not exist in the chart"
        values = deep_merge(values, yaml.safe_load(path.read_text()) or {})
    for parameter in helm_source.get("parameters", []):
        assert parameter.get("forceString") is True, parameter["name"]
        _set_path(values, parameter["name"], str(parameter["value"]))
    return values


def applications(**overrides: Any) -> list[dict]:
    docs = render_chart(GITOPS, gitops_values(**overrides), name="iots6-gitops", namespace="argocd")
    (appset,) = [d for d in docs if d["kind"] == "ApplicationSet"]
    return argocd_render(appset)


def env_values(env: str, promoted: bool = True) -> dict:
    """The values Argo CD would render environment ``env`` with (prod as after its first promotion)."""
    (app,) = [a for a in applications() if a["metadata"]["name"] == f"iots6-{env}"]
    values = application_values(app)
    if env == "prod" and promoted:
        values = deep_merge(values, PROMOTED_DIGESTS)
    return values


def render_env(env: str, **extra: Any) -> list[dict]:
    return render_chart(CHART, deep_merge(env_values(env), extra), name="iots6", namespace=f"iots6-{env}")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {env: render_env(env) for env in ENVIRONMENTS}


# ------------------------------------------------------------------------------------------ CRD schemas (npm)
def _pinned(package: str) -> str:
    lock = json.loads((HERE / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def _installed(package: str) -> str | None:
    try:
        return json.loads((HERE / "node_modules" / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def crd_validator():
    """validate(objects) -> {name: [errors]} with the pinned @kubernetes-models schemas (npm ci on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_tool(
            "`node`/`npm` not found; install Node.js 18+ (scripts/install-system.sh does) for the CRD schemas."
        )
    packages = json.loads((HERE / "package.json").read_text())["dependencies"]
    if any(_installed(p) != _pinned(p) for p in packages):
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm ci` in {HERE} ran over {NPM_CI_TIMEOUT_S} s; check access to the npm registry.")
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or [""])[-1][:300]
            pytest.fail(f"`npm ci` in {HERE} failed ({tail}); fix it and re-run.")

    def validate(objects: list[dict]) -> dict[str, list[str]]:
        done = subprocess.run(
            [node, str(HERE / "validate_crds.mjs")],
            input=json.dumps(objects),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return {f"{r['kind']}/{r['name']}": r["errors"] for r in json.loads(done.stdout)["results"]}

    return validate
