"""The Kubernetes manifests, checked offline: both overlays render and pass every check,
and every check fails on a defect planted in the rendered YAML (in memory). Kubernetes'
schemas, the pods and the objects around them here; KEDA's objects in
test_keda_manifests.py, the image in test_dockerfile.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.checks import problems
from tests.k8s.edits import (
    Edit,
    config,
    container,
    deployment,
    drop,
    one,
    pod,
    set_key,
    two_images,
)
from tests.k8s.manifests import OVERLAYS, Manifests, rendered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_every_check(overlay: str, keda: Path) -> None:
    docs = rendered(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert kinds >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
        "TriggerAuthentication",
    }
    assert problems(docs, overlay=overlay, keda_dir=keda) == []


# (overlay, defect, the message the checks must give)
DEFECTS: list[tuple[str, str, Edit, str]] = [
    # Kubernetes' schemas, strict
    (
        "redis",
        "misspelt container field",
        lambda d: set_key(container(d, "worker"), "imagePullPolicyy", "Always"),
        "Kubernetes 1.30 schema: spec.template.spec.containers.0: Additional properties",
    ),
    (
        "redis",
        "wrong type",
        lambda d: set_key(pod(d, "web"), "terminationGracePeriodSeconds", "30"),
        "Kubernetes 1.30 schema: spec.template.spec.terminationGracePeriodSeconds",
    ),
    (
        "redis",
        "unknown kind",
        lambda d: d.append(
            {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
        ),
        "no Kubernetes 1.30 schema for apps/v1 Deploymnet",
    ),
    # pods
    (
        "redis",
        "token mounted",
        lambda d: set_key(pod(d, "worker"), "automountServiceAccountToken", True),
        "Deployment/asyncjobs-worker: automountServiceAccountToken must be false",
    ),
    (
        "redis",
        "unknown service account",
        lambda d: set_key(pod(d, "web"), "serviceAccountName", "default"),
        "serviceAccountName 'default' is not a rendered ServiceAccount",
    ),
    (
        "redis",
        "root allowed",
        lambda d: set_key(pod(d, "web")["securityContext"], "runAsNonRoot", False),
        "Deployment/asyncjobs-web: securityContext.runAsNonRoot must be true",
    ),
    (
        "redis",
        "other UID",
        lambda d: set_key(pod(d, "scheduler")["securityContext"], "runAsUser", 1000),
        "runAsUser 1000 is not the Dockerfile's USER 10001",
    ),
    (
        "redis",
        "writable root",
        lambda d: set_key(
            container(d, "worker")["securityContext"], "readOnlyRootFilesystem", False
        ),
        "container worker: securityContext.readOnlyRootFilesystem must be true",
    ),
    (
        "redis",
        "privilege escalation",
        lambda d: drop(container(d, "web")["securityContext"], "allowPrivilegeEscalation"),
        "container web: securityContext.allowPrivilegeEscalation must be false",
    ),
    (
        "redis",
        "capabilities kept",
        lambda d: set_key(
            container(d, "scheduler")["securityContext"], "capabilities", {"drop": ["NET_RAW"]}
        ),
        "container scheduler: capabilities must drop ALL",
    ),
    (
        "redis",
        "no seccomp",
        lambda d: drop(pod(d, "worker")["securityContext"], "seccompProfile"),
        "container worker: seccompProfile must be RuntimeDefault",
    ),
    (
        "redis",
        "no /tmp",
        lambda d: set_key(container(d, "web"), "volumeMounts", []),
        "container web: mount an emptyDir at /tmp",
    ),
    (
        "redis",
        "no cpu request",
        lambda d: drop(container(d, "worker")["resources"]["requests"], "cpu"),
        "container worker: resources.requests must set cpu",
    ),
    (
        "redis",
        "latest image",
        lambda d: set_key(container(d, "worker"), "image", "asyncjobs:latest"),
        "image 'asyncjobs:latest' needs a fixed tag",
    ),
    ("redis", "two images", two_images, "one image for web, worker and scheduler"),
    (
        "redis",
        "shell form",
        lambda d: set_key(
            container(d, "worker"),
            "command",
            ["sh", "-c", "taskiq worker asyncjobs.django.worker:broker"],
        ),
        "runs a shell; use the exec form",
    ),
    (
        "redis",
        "two worker processes",
        lambda d: set_key(
            container(d, "worker"),
            "command",
            ["taskiq", "worker", "asyncjobs.django.worker:broker"],
        ),
        "the worker must run exactly taskiq worker asyncjobs.django.worker:broker --workers 1",
    ),
    (
        "redis",
        "grace shorter than the drain",
        lambda d: set_key(pod(d, "worker"), "terminationGracePeriodSeconds", 30),
        "terminationGracePeriodSeconds 30 < DRAIN_TIMEOUT 25 + HARD_MARGIN_S 5 + manager poll 1 "
        "+ slack 3 = 34",
    ),
    (
        "rabbitmq",
        "drain raised, grace not",
        lambda d: set_key(config(d), "ASYNCJOBS_DRAIN_TIMEOUT", "60"),
        "terminationGracePeriodSeconds 35 < DRAIN_TIMEOUT 60",
    ),
    (
        "redis",
        "no health port",
        lambda d: drop(config(d), "ASYNCJOBS_HEALTH_PORT"),
        "ASYNCJOBS_HEALTH_PORT is not set: the worker serves no probes",
    ),
    (
        "redis",
        "health port elsewhere",
        lambda d: set_key(config(d), "ASYNCJOBS_HEALTH_PORT", "9000"),
        "no containerPort 9000 (ASYNCJOBS_HEALTH_PORT)",
    ),
    (
        "redis",
        "readiness on /livez",
        lambda d: set_key(container(d, "worker")["readinessProbe"]["httpGet"], "path", "/livez"),
        "readinessProbe must GET /readyz on ASYNCJOBS_HEALTH_PORT 8001",
    ),
    (
        "redis",
        "no startup probe",
        lambda d: drop(container(d, "worker"), "startupProbe"),
        "startupProbe must GET /livez",
    ),
    (
        "redis",
        "misspelt setting",
        lambda d: set_key(config(d), "ASYNCJOBS_DRAIN_TIMOUT", "30"),
        "its settings do not load: environment variable ASYNCJOBS_DRAIN_TIMOUT: unknown setting",
    ),
    (
        "redis",
        "Secret not rendered",
        lambda d: d.remove(one(d, "Secret", "asyncjobs-env")),
        "envFrom names Secret/asyncjobs-env, which is not rendered",
    ),
    (
        "redis",
        "one scheduler",
        lambda d: set_key(deployment(d, "scheduler")["spec"], "replicas", 1),
        "replicas 1: run 2 schedulers",
    ),
    (
        "redis",
        "scheduler safety unexplained",
        lambda d: drop(deployment(d, "scheduler")["metadata"], "annotations"),
        "annotation asyncjobs/replicas must say why 2 replicas are safe",
    ),
    (
        "redis",
        "scheduler command",
        lambda d: container(d, "scheduler")["command"].append("--skip-first-run"),
        "the scheduler must run exactly taskiq scheduler asyncjobs.django.worker:scheduler",
    ),
    (
        "redis",
        "web without graceful timeout",
        lambda d: set_key(container(d, "web"), "command", ["uvicorn", "example.asgi:application"]),
        "uvicorn needs --timeout-graceful-shutdown N",
    ),
    (
        "redis",
        "web without preStop",
        lambda d: drop(container(d, "web"), "lifecycle"),
        "a preStop sleep lets the endpoints drain",
    ),
    (
        "redis",
        "web grace too short",
        lambda d: set_key(pod(d, "web"), "terminationGracePeriodSeconds", 20),
        "terminationGracePeriodSeconds 20 < preStop sleep 5 + --timeout-graceful-shutdown 20",
    ),
    (
        "redis",
        "web without application",
        lambda d: container(d, "web")["command"].pop(1),
        "uvicorn needs the ASGI application (module:attribute) first",
    ),
    # Service, PodDisruptionBudgets, NetworkPolicies
    (
        "redis",
        "no budget for the schedulers",
        lambda d: d.remove(one(d, "PodDisruptionBudget", "asyncjobs-scheduler")),
        "Deployment/asyncjobs-scheduler: needs exactly one PodDisruptionBudget",
    ),
    (
        "rabbitmq",
        "no default deny",
        lambda d: d.remove(one(d, "NetworkPolicy", "asyncjobs-default-deny-ingress")),
        "no NetworkPolicy denies ingress to every asyncjobs pod",
    ),
    (
        "redis",
        "web unreachable",
        lambda d: d.remove(one(d, "NetworkPolicy", "asyncjobs-web-http")),
        "no NetworkPolicy lets HTTP reach Deployment/asyncjobs-web",
    ),
    (
        "redis",
        "Service to a missing port",
        lambda d: set_key(one(d, "Service")["spec"]["ports"][0], "targetPort", "web"),
        "targetPort 'web' is not a named containerPort of Deployment/asyncjobs-web",
    ),
]


@pytest.mark.parametrize(
    ("overlay", "defect", "edit", "expected"),
    DEFECTS,
    ids=[f"{overlay}-{defect}" for overlay, defect, _, _ in DEFECTS],
)
def test_a_planted_defect_is_reported(
    overlay: str, defect: str, edit: Edit, expected: str, keda: Path
) -> None:
    docs = rendered(overlay)
    assert not [p for p in problems(docs, overlay=overlay, keda_dir=keda) if expected in p]
    edit(docs)
    found = problems(docs, overlay=overlay, keda_dir=keda)
    assert any(expected in p for p in found), f"{defect}: expected {expected!r} in {found}"


def test_manifests_helper_resolves_env_like_the_kubelet() -> None:
    docs = rendered("redis")
    manifests = Manifests(docs)
    worker = manifests.workload("worker")
    env, unresolved = manifests.env(worker.containers[0])
    assert unresolved == []
    assert env["ASYNCJOBS_WORKER_QUEUES"] == "default,emails"  # env over envFrom
    assert env["ASYNCJOBS_BROKER_URL"].startswith("redis://")  # from the Secret
    assert env["ASYNCJOBS_HEALTH_PORT"] == "8001"  # from the ConfigMap
