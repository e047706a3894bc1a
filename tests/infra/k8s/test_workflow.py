"""The Images workflow (.github/workflows/images.yaml), checked against the published GitHub workflow schema that
check-jsonschema ships (vendor.github-workflows), and against the repository it builds: every Dockerfile target
the chart runs is built, pushed only from main, and the dev bump edits exactly the three tags of values-dev.yaml.
GitHub itself (runners, OIDC login, the registry) is not reachable here.
"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from .conftest import CHART, ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "images.yaml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matches_the_published_schema():
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_builds_every_target_the_chart_runs():
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "services" / "Dockerfile").read_text(), re.M))
    jobs = _workflow()["jobs"]
    built = set(jobs["build"]["strategy"]["matrix"]["target"])
    assert built == {"ingest", "config-server", "migrate"} and built <= targets
    images = {v["repository"] for k, v in yaml.safe_load((CHART / "values.yaml").read_text())["images"].items()
              if isinstance(v, dict) and v.get("repository", "").startswith("iots6-")}  # fmt: skip
    assert images == {f"iots6-{t}" for t in built}
    steps = jobs["build"]["steps"]
    (build,) = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")]
    assert build["with"]["file"] == "services/Dockerfile" and build["with"]["push"] == "${{ env.PUSH == 'true' }}"
    assert "refs/heads/main" in jobs["build"]["env"]["PUSH"]
    assert "hadolint services/Dockerfile" in jobs["hadolint"]["steps"][-1]["run"]
    assert jobs["build"]["needs"] == "hadolint" and jobs["propose-dev-bump"]["needs"] == "build"


def test_dev_bump_edits_the_three_tags(tmp_path):
    """Run the bump step's script on a copy of values-dev.yaml: exactly the three iots6 tags change."""
    run = _workflow()["jobs"]["propose-dev-bump"]["steps"][1]["run"]
    script = re.search(r"<<'PY'\n(.*?)\n\s*PY", run, re.S).group(1)
    script = "\n".join(line[len("          ") :] if line.startswith(" ") else line for line in script.splitlines())
    work = tmp_path / "infra" / "helm" / "iots6"
    work.mkdir(parents=True)
    original = (CHART / "values-dev.yaml").read_text()
    (work / "values-dev.yaml").write_text(original)
    subprocess.run([sys.executable, "-", "sha-0123456789ab"], input=script, cwd=tmp_path, text=True, check=True)
    bumped = yaml.safe_load((work / "values-dev.yaml").read_text())
    assert {k: v["tag"] for k, v in bumped["images"].items()} == {
        "ingest": "sha-0123456789ab",
        "configServer": "sha-0123456789ab",
        "migrate": "sha-0123456789ab",
    }
    before = yaml.safe_load(original)
    del before["images"], bumped["images"]
    assert bumped == before
