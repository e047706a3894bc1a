"""No secret value leaves its place during a whole `deploy aks` and `secrets` session.

Everything an operator or another user of the machine could see is captured — stdout and stderr of every command,
every log record at DEBUG (the Azure SDKs' included), the argv and environment of every subprocess (the process
list), the ApplicationSet and every other object sent to the cluster, every file written under the state directory
— and searched for every value the session generated or received: the vault's secrets (private keys included,
line by line), the Entra ID tokens, the registry's tokens and the workload identity's federated token. The only
places a value may be: the vault, and the 0600 kubeconfig holding the operator's AKS token.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess

from tests.aks.conftest import ACR_HOST


def _needles(cloud) -> list[str]:
    needles = []
    for name, versions in cloud.vault.secrets.items():
        if name.endswith("-crt"):
            continue  # certificates are public (the CA goes to every device)
        for version in versions:
            lines = [line for line in version.value.splitlines() if len(line) > 8 and "-----" not in line]
            needles.extend(lines or [version.value])
    needles += list(cloud.vault.token_scopes)
    needles += list(cloud.acr.refresh_tokens) + list(cloud.acr.access_tokens)
    needles.append(cloud.vault.federated_token)
    return needles


def test_a_whole_session_leaks_nothing(harness, cloud, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    processes: list[dict] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *rest, **kwargs):
            processes.append(
                {
                    "argv": [str(a) for a in (args if isinstance(args, list | tuple) else [args])],
                    "env": dict(kwargs.get("env") or os.environ),
                }
            )
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    harness.cluster.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "iots6-migrate", "namespace": "iots6-dev", "labels": {"app": "migrate"}},
            "spec": {"template": {"metadata": {"labels": {"app": "migrate"}}, "spec": {"containers": []}}},
            "status": {"succeeded": 1},
        }
    )
    outputs = []
    runs = [
        (harness.deploy_args("dev", "--yes"), True),
        (["deploy", "aks", "--env", "dev", "--json"], True),
        (["deploy", "aks", "--env", "dev", "--status", "--json"], True),
        (["deploy", "aks", "--env", "dev", "--status"], True),
        (["deploy", "aks", "--env", "dev", "--check", "--json"], True),
        (["secrets", "seed", "--env", "dev"], True),
        (["secrets", "seed", "--env", "dev", "--json"], True),
        (["secrets", "list", "--env", "dev"], True),
        (["secrets", "list", "--env", "dev", "--json"], True),
        (["secrets", "rotate", "mqtt-operator-password", "--env", "dev"], True),
        (["secrets", "rotate", "tls-config-key", "--env", "dev", "--json"], True),
        (["env", "show", "dev", "--json"], True),
        (["db", "migrate", "--env", "dev", "--json"], True),
        (
            ["config", "get", "--fleet", "--env", "dev"],
            False,
        ),  # reads the admin token from the vault, then cannot connect
    ]
    for args, ok in runs:
        result = harness.cli(*args, ok=ok)
        outputs.append(result.stdout + result.stderr)
        harness.cluster.script = []  # after the first deploy the environment stays Synced/Healthy
    cloud.vault.forbid = True
    refused = harness.cli("secrets", "list", "--env", "dev", ok=False)
    assert refused.exit_code == 5
    outputs.append(refused.stdout + refused.stderr)
    assert outputs[-2].strip().startswith("error:") and "config.dev.iots6.example.com" in outputs[-2], outputs[-2]

    needles = _needles(cloud)
    assert len(needles) > 30 and any(s.startswith("6dae42f8") for s in cloud.vault.token_scopes.values())
    logs = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    assert "azure" in logs, "the SDKs logged at DEBUG: the search has something to search"
    argvs = json.dumps([p["argv"] for p in processes])
    envs = json.dumps([p["env"] for p in processes])
    assert "terraform" in argvs
    applied = json.dumps(harness.cluster.applied)
    terraform_inputs = json.dumps([c["var_files"] for c in harness.terraform.calls()] + harness.terraform.calls())
    kubeconfig = harness.state / "deploy" / "aks" / "kubeconfig"
    files = {
        str(p): p.read_text(errors="replace")
        for p in harness.state.rglob("*")
        if p.is_file() and p != kubeconfig and "charts" not in p.parts
    }
    places = {
        "output": "\n".join(outputs),
        "logs": logs,
        "argv": argvs,
        "subprocess env": envs,
        "cluster objects": applied,
        "terraform calls": terraform_inputs,
        **files,
    }
    for needle in needles:
        for where, text in places.items():
            assert needle not in text, f"a secret value reached {where}"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert ACR_HOST in applied  # the search ran over real content
