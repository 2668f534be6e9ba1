"""Rendering the kustomize overlays and reading what the pods will see.

``render(overlay)`` runs ``kubectl kustomize k8s/overlays/<overlay>`` and returns the
documents; ``Manifests`` looks objects up and resolves a container's environment the way
the kubelet does (``envFrom`` ConfigMaps and Secrets, then ``env``), and loads the
asyncjobs settings from it the way the process will (``asyncjobs.config.load_config``).

Tools and data that may be missing locally (kubectl, the KEDA schemas under
``../shared/keda``) skip the tests with the reason, and fail them when ``CI`` is set.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("redis", "rabbitmq")
# KEDA's CRDs and scaler parameters (read in place, never copied into the repository).
KEDA_VERSION = "v2.20.2"
# Beside the checkout (../shared/keda), or where ASYNCJOBS_KEDA_SCHEMAS points; a clone
# elsewhere on this machine (e.g. a CI checkout) finds the team's copy in /work/shared.
_GIVEN = os.environ.get("ASYNCJOBS_KEDA_SCHEMAS")
KEDA_CANDIDATES = [
    *([Path(_GIVEN)] if _GIVEN else []),
    REPO.parent / "shared" / "keda",
    Path("/work/shared/keda"),
]
KEDA_DIR = next(
    (
        c / KEDA_VERSION
        for c in KEDA_CANDIDATES
        if (c / KEDA_VERSION / "scalers-schema.json").is_file()
    ),
    REPO.parent / "shared" / "keda" / KEDA_VERSION,
)

Doc = dict[str, Any]


def require(found: bool, what: str, fix: str) -> None:
    """Skip the test when ``what`` is missing; fail it under CI, saying how to fix it."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI is set: {fix}")
    pytest.skip(f"{what} is missing ({fix})")


def kubectl() -> str:
    path = shutil.which("kubectl")
    require(
        path is not None, "kubectl on PATH (for `kubectl kustomize`)", "install kubectl >= 1.27"
    )
    assert path is not None
    return path


def keda_dir() -> Path:
    require(
        (KEDA_DIR / "scalers-schema.json").is_file(),
        f"KEDA schemas at {KEDA_DIR}",
        "the shared/ directory must sit beside the repository (shared/keda/"
        + KEDA_VERSION
        + "), or set ASYNCJOBS_KEDA_SCHEMAS to the keda/ directory",
    )
    return KEDA_DIR


def render(overlay: str) -> list[Doc]:
    """The overlay's objects, as ``kubectl kustomize`` renders them."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(render(overlay))


def rendered(overlay: str) -> list[Doc]:
    """The overlay's objects, rendered once per run; a fresh copy each call, so a test
    may plant a defect in its own."""
    return copy.deepcopy(list(_rendered(overlay)))


def ref(doc: Doc) -> str:
    """``Kind/name``, how problems name an object."""
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


@dataclass(frozen=True)
class Workload:
    """One Deployment's pod template and its first container."""

    deployment: Doc

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def ref(self) -> str:
        return ref(self.deployment)

    @property
    def pod(self) -> Doc:
        spec: Doc = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def containers(self) -> list[Doc]:
        containers: list[Doc] = self.pod.get("containers", [])
        return containers

    @property
    def argv(self) -> list[str]:
        """``command`` + ``args`` of the first container: what runs as PID 1."""
        first = self.containers[0] if self.containers else {}
        return [str(a) for a in [*first.get("command", []), *first.get("args", [])]]

    @property
    def role(self) -> str:
        """worker, scheduler or web, from the command (``?`` when it is none of them)."""
        argv = self.argv
        if argv[:2] == ["taskiq", "worker"]:
            return "worker"
        if argv[:2] == ["taskiq", "scheduler"]:
            return "scheduler"
        if argv[:1] == ["uvicorn"]:
            return "web"
        return "?"


class Manifests:
    """The rendered objects of one overlay."""

    def __init__(self, docs: list[Doc], overlay: str = "") -> None:
        self.docs = docs
        self.overlay = overlay

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc.get("kind") == kind]

    def find(self, kind: str, name: str) -> Doc | None:
        for doc in self.of_kind(kind):
            if doc.get("metadata", {}).get("name") == name:
                return doc
        return None

    def workloads(self) -> Iterator[Workload]:
        for doc in self.of_kind("Deployment"):
            yield Workload(doc)

    def workload(self, role: str) -> Workload:
        found = [w for w in self.workloads() if w.role == role]
        assert found, f"no Deployment runs the {role} (taskiq worker / taskiq scheduler / uvicorn)"
        return found[0]

    def data_of(self, kind: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's or Secret's keys and values (Secrets' ``data`` decoded)."""
        doc = self.find(kind, name)
        if doc is None:
            return None
        values = {k: str(v) for k, v in (doc.get("data") or {}).items()}
        if kind == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in values.items()}
            values |= {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
        return values

    def env(self, container: Doc) -> tuple[dict[str, str], list[str]]:
        """The container's environment and the problems found resolving it."""
        env: dict[str, str] = {}
        problems: list[str] = []
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    name = source[key]["name"]
                    values = self.data_of(kind, name)
                    if values is None:
                        problems.append(f"envFrom names {kind}/{name}, which is not rendered")
                    env |= values or {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            source = item.get("valueFrom", {})
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in source:
                    name, wanted = source[key]["name"], source[key]["key"]
                    values = self.data_of(kind, name) or {}
                    if wanted not in values:
                        problems.append(f"env {item['name']} reads {kind}/{name} key {wanted}")
                    else:
                        env[item["name"]] = values[wanted]
        return env, problems

    def settings(self, workload: Workload) -> AsyncJobsConfig | str:
        """The asyncjobs settings the container starts with, or why it would not start."""
        env, problems = self.env(workload.containers[0])
        if problems:
            return "; ".join(problems)
        asyncjobs_env = {k: v for k, v in env.items() if k.startswith("ASYNCJOBS_")}
        try:
            return load_config(None, environ=asyncjobs_env)
        except ConfigurationError as exc:
            return f"its settings do not load: {exc}"
