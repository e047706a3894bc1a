"""The GitOps objects (infra/argocd): one ApplicationSet that generates exactly the three environments' Applications.

The chart is rendered with real Helm; the ApplicationSet is expanded by conftest.argocd_render (Argo CD's
goTemplate semantics, missingkey=error), whose output is checked here against Go's own text/template (Helm's
engine); every object is validated against the pinned Argo CD CRD schemas; every generated Application's chart
source is then rendered with exactly the value files and parameters it names. Argo CD itself is not run: whether
a real controller syncs and self-heals is for a real cluster to show (docs/deploy-aks.md).
"""

from __future__ import annotations

import pytest
import yaml

from .conftest import (
    CHART,
    GITOPS,
    ROOT,
    MissingKey,
    application_values,
    applications,
    argocd_render,
    gitops_values,
    go_template,
    helm,
    render_chart,
    template_strings,
)


def _gitops_docs(**overrides):
    return render_chart(GITOPS, gitops_values(**overrides), name="iots6-gitops", namespace="argocd")


def test_gitops_chart_lints_clean():
    report = helm().lint(GITOPS, gitops_values(), strict=True, namespace="argocd")
    assert not report["errors"], report
    assert all(m["severity"] < 2 for m in report["messages"]), report["messages"]


def test_one_applicationset_with_a_list_generator():
    docs = _gitops_docs()
    assert sorted(d["kind"] for d in docs) == ["AppProject", "ApplicationSet"]
    (appset,) = [d for d in docs if d["kind"] == "ApplicationSet"]
    spec = appset["spec"]
    assert spec["goTemplate"] is True and spec["goTemplateOptions"] == ["missingkey=error"]
    assert spec["syncPolicy"]["preserveResourcesOnDeletion"] is True
    (generator,) = spec["generators"]
    assert list(generator) == ["list"] and len(generator["list"]["elements"]) == 3


def test_exactly_three_applications_with_their_namespaces_and_values_files():
    apps = applications()
    assert [a["metadata"]["name"] for a in apps] == ["iots6-dev", "iots6-staging", "iots6-prod"]
    for app, env in zip(apps, ("dev", "staging", "prod"), strict=True):
        spec = app["spec"]
        assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": f"iots6-{env}"}
        assert spec["project"] == "iots6"
        source = spec["source"]
        assert source["path"] == "infra/helm/iots6" and (ROOT / source["path"]).resolve() == CHART
        assert source["helm"]["valueFiles"] == [f"values-{env}.yaml"]
        assert (CHART / f"values-{env}.yaml").is_file()
        assert source["helm"]["releaseName"] == "iots6"
        assert app["metadata"]["labels"]["iots6.io/environment"] == env


def test_dev_and_staging_sync_automatically_prod_by_hand():
    policies = {a["metadata"]["name"]: a["spec"]["syncPolicy"] for a in applications()}
    for name in ("iots6-dev", "iots6-staging"):
        assert policies[name]["automated"] == {"prune": True, "selfHeal": True}, name
    assert "automated" not in policies["iots6-prod"]
    for policy in policies.values():
        assert "CreateNamespace=true" in policy["syncOptions"]


def test_repository_and_revision_are_parameters():
    fork, tag = "git@github.com:someone/iotctl-fork.git", "v0.3.1"
    envs = gitops_values()["environments"]
    envs[2]["revision"] = "release-0.3"  # prod may follow its own branch or tag
    apps = applications(repoURL=fork, revision=tag, environments=envs)
    assert {a["spec"]["source"]["repoURL"] for a in apps} == {fork}
    assert [a["spec"]["source"]["targetRevision"] for a in apps] == [tag, tag, "release-0.3"]
    (project,) = [d for d in _gitops_docs(repoURL=fork) if d["kind"] == "AppProject"]
    assert project["spec"]["sourceRepos"] == [fork]
    assert {d["namespace"] for d in project["spec"]["destinations"]} == {"iots6-dev", "iots6-staging", "iots6-prod"}


def test_terraform_outputs_reach_the_chart_as_parameters():
    example = {e["name"]: e for e in gitops_values()["environments"]}
    for app in applications():
        env = app["metadata"]["labels"]["iots6.io/environment"]
        values = application_values(app)
        assert values["externalSecrets"]["keyVaultUrl"] == example[env]["keyVaultUri"]
        assert values["workloadIdentity"]["clientId"] == example[env]["workloadIdentityClientId"]
        assert values["images"]["registry"] == example[env]["containerRegistryLoginServer"]
        assert values["database"]["host"] == example[env]["postgresHost"]
        assert values["configServer"]["ingress"]["host"] == example[env]["configServerHost"]


def test_missing_key_is_an_error_not_an_empty_value():
    (appset,) = [d for d in _gitops_docs() if d["kind"] == "ApplicationSet"]
    del appset["spec"]["generators"][0]["list"]["elements"][1]["keyVaultUri"]
    with pytest.raises(MissingKey, match='no entry for key "keyVaultUri"'):
        argocd_render(appset)
    # Before that, the chart's schema already refuses an environment without it.
    values = gitops_values()
    del values["environments"][1]["keyVaultUri"]
    h = helm()
    with h.Chart.load(GITOPS) as chart, pytest.raises(h.HelmValuesError, match="keyVaultUri"):
        chart.render(values, name="iots6-gitops", namespace="argocd")


def test_stand_in_agrees_with_go_text_template(tmp_path):
    """Every templated field, rendered by conftest.go_template and by Go's text/template (Helm's engine)."""
    (appset,) = [d for d in _gitops_docs() if d["kind"] == "ApplicationSet"]
    fields = template_strings(appset["spec"]["template"]) + [("templatePatch", appset["spec"]["templatePatch"])]
    chart = tmp_path / "gotemplate"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gotemplate\nversion: 0.1.0\n")
    for i, (_, text) in enumerate(fields):
        (chart / "templates" / f"f{i}.yaml").write_text("{{- with .Values.element }}" + text + "{{ end }}")
    h = helm()
    for element in appset["spec"]["generators"][0]["list"]["elements"]:
        with h.Chart.load(chart) as loaded:
            go = loaded.render({"element": element}, name="t", namespace="t")
        for i, (where, text) in enumerate(fields):
            assert go_template(text, element) == go[f"gotemplate/templates/f{i}.yaml"], f"{element['env']}: {where}"


def test_objects_match_the_argo_cd_crd_schemas(crd_validator):
    objects = _gitops_docs() + applications()
    errors = crd_validator(objects)
    assert len(errors) == 5
    assert all(not e for e in errors.values()), errors


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_application_renders_the_chart(env):
    (app,) = [a for a in applications() if a["metadata"]["name"] == f"iots6-{env}"]
    values = application_values(app)
    h = helm()
    with h.Chart.load(CHART) as chart:
        if env == "prod":
            # Until the first promotion sets the iots6 digests, prod refuses to render (and so to sync).
            with pytest.raises(h.HelmRenderError, match=r"images\.ingest\.digest is empty"):
                chart.render(values, name="iots6", namespace=app["spec"]["destination"]["namespace"])
            return
        rendered = chart.render(values, name="iots6", namespace=app["spec"]["destination"]["namespace"])
    kinds = {d["kind"] for text in rendered.values() for d in yaml.safe_load_all(text) if d}
    assert {"StatefulSet", "Deployment", "ExternalSecret", "SecretStore", "NetworkPolicy"} <= kinds
