"""FakeKubernetes: a test-only stand-in for a Kubernetes API server at iotctl's one cluster boundary.

No API server, ArgoCD or External Secrets controller can run on this machine. The fake implements the
:class:`iotctl.deploy.cluster.Cluster` protocol (apply, get, list) over an in-memory store, and a test scripts how
objects' statuses change from one poll to the next with objects shaped like those ArgoCD and ESO really write
(tests/aks/status/*.yaml). Passing tests against it show iotctl's waiting and diagnosis logic; they say nothing
about a real cluster, which only a real cluster can show.

``controllers=True`` stands in for the controllers a real cluster runs, crudely and only for what iotctl waits on:
an applied CRD becomes ``Established``, a Deployment or StatefulSet reports all replicas ready, a Job ``Complete``
(or ``Failed`` when its name is in ``failing_jobs``). Objects applied with a status already in the store keep it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STATUS_DIR = Path(__file__).parent / "status"


def load(name: str) -> list[dict[str, Any]]:
    """The objects of tests/aks/status/<name>.yaml."""
    return [doc for doc in yaml.safe_load_all((STATUS_DIR / f"{name}.yaml").read_text()) if doc]


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


@dataclass
class FakeKubernetes:
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    script: list[list[dict[str, Any]]] = field(default_factory=list)  # per poll: objects that appear or change
    polls: int = 0
    controllers: bool = False
    failing_jobs: set[str] = field(default_factory=set)
    deleted: list[tuple[str, str, str, str]] = field(default_factory=list)

    def put(self, *objs: dict[str, Any]) -> None:
        for obj in objs:
            self.objects[_key(obj)] = copy.deepcopy(obj)

    def apply(self, objects: Iterable[dict[str, Any]]) -> list[str]:
        refs = []
        for obj in objects:
            self.applied.append(copy.deepcopy(obj))
            current = self.objects.get(_key(obj), {})
            merged = copy.deepcopy(obj)
            if "status" in current:
                merged["status"] = current["status"]
            elif self.controllers:
                status = self._settle(merged)
                if status is not None:
                    merged["status"] = status
            self.objects[_key(obj)] = merged
            refs.append(f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}")
        return refs

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if kind == "Application":  # each look at the Application is one poll of the rollout loop
            self._advance()
        obj = self.objects.get((api_version, kind, namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in sorted(self.objects.items())
            if v == api_version and k == kind and (namespace is None or ns == (namespace or ""))
        ]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        key = (api_version, kind, namespace or "", name)
        self.deleted.append(key)
        if kind == "Namespace":
            for other in [k for k in self.objects if k[2] == name]:
                del self.objects[other]
        return self.objects.pop(key, None) is not None

    def _settle(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        kind, spec = obj["kind"], obj.get("spec") or {}
        replicas = spec.get("replicas", 1)
        if kind == "CustomResourceDefinition":
            return {"conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}
        if kind == "Deployment":
            return {
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
            }
        if kind == "StatefulSet":
            return {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas}
        if kind == "Job":
            failed = obj["metadata"]["name"] in self.failing_jobs
            condition = (
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
                if failed
                else {"type": "Complete", "status": "True"}
            )
            return {"conditions": [condition], **({"failed": 4} if failed else {"succeeded": 1})}
        return None

    def _advance(self) -> None:
        if self.polls < len(self.script):
            self.put(*self.script[self.polls])
        self.polls += 1


def for_env(objects: list[dict[str, Any]], env: str) -> list[dict[str, Any]]:
    """Status objects written for prod (tests/aks/status) as another environment's: names and namespaces moved."""
    import json

    return json.loads(json.dumps(objects).replace("iots6-prod", f"iots6-{env}"))
