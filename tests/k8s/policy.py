"""Our rules for the pods (each written down in a comment of k8s/base).

Every function returns problems, each naming the object and saying what to change;
an empty list means the rule holds.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker.settings import HARD_MARGIN_S
from tests.k8s.manifests import Doc, Manifests, Workload

WORKER_ARGV = ["taskiq", "worker", "asyncjobs.django.worker:broker", "--workers", "1"]
SCHEDULER_ARGV = ["taskiq", "scheduler", "asyncjobs.django.worker:scheduler"]
# taskiq's process manager checks its children once a second: the main process exits at
# most this long after its worker child.
MANAGER_POLL_S = 1.0
MIN_SLACK_S = 3.0  # on top of the worker's own deadline, and of the web's shutdown
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "busybox"}
SCHEDULER_REPLICAS = 2
SCHEDULER_ANNOTATION = "asyncjobs/replicas"


def check_pods(manifests: Manifests, image_uid: int | None) -> list[str]:
    problems: list[str] = []
    images = set()
    for workload in manifests.workloads():
        problems += [f"{workload.ref}: {p}" for p in pod_problems(manifests, workload, image_uid)]
        images |= {c.get("image") for c in workload.containers}
    if len(images) > 1:
        problems.append(
            f"one image for web, worker and scheduler; found {sorted(map(str, images))}"
        )
    roles = sorted(w.role for w in manifests.workloads())
    if roles != ["scheduler", "web", "worker"]:
        problems.append(f"expected one web, one worker and one scheduler Deployment; found {roles}")
    return problems


def pod_problems(manifests: Manifests, workload: Workload, image_uid: int | None) -> list[str]:
    pod = workload.pod
    problems: list[str] = []
    account = pod.get("serviceAccountName")
    if not account or manifests.find("ServiceAccount", account) is None:
        problems.append(f"serviceAccountName {account!r} is not a rendered ServiceAccount")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false: the pods never call the API")
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot") is not True:
        problems.append("securityContext.runAsNonRoot must be true")
    if image_uid is not None and context.get("runAsUser") != image_uid:
        problems.append(
            f"securityContext.runAsUser {context.get('runAsUser')} is not the "
            f"Dockerfile's USER {image_uid}"
        )
    tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for container in workload.containers:
        problems += container_problems(container, context, tmp_volumes)
    return problems + role_problems(manifests, workload)


def role_problems(manifests: Manifests, workload: Workload) -> list[str]:
    """What the workload's role (web, worker, scheduler) requires of it."""
    problems: list[str] = []
    settings = manifests.settings(workload)
    if isinstance(settings, str):
        problems.append(settings)
    elif workload.role == "worker":
        problems += worker_problems(workload, settings)
    if workload.role == "scheduler":
        problems += scheduler_problems(workload)
    elif workload.role == "web":
        problems += web_problems(workload)
    elif workload.role == "?":
        problems.append(f"runs {workload.argv}: not the web, worker or scheduler command")
    return problems


def command_problems(container: Doc) -> list[str]:
    """The container's command: set, and in exec form (no shell between it and SIGTERM)."""
    name = container.get("name")
    argv = [str(a) for a in [*container.get("command", []), *container.get("args", [])]]
    if not container.get("command"):
        return [f"container {name}: set `command` (exec form) instead of relying on the image"]
    if PurePosixPath(argv[0]).name in SHELLS or "-c" in argv[1:2]:
        return [
            f"container {name}: command {argv[:3]} runs a shell; use the exec form "
            "so the process is PID 1 and gets SIGTERM"
        ]
    return []


def security_problems(container: Doc, pod_context: Doc) -> list[str]:
    """The container's securityContext (the pod's seccompProfile counts too)."""
    name = container.get("name")
    problems: list[str] = []
    context = container.get("securityContext", {})
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(f"container {name}: securityContext.allowPrivilegeEscalation must be false")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append(f"container {name}: securityContext.readOnlyRootFilesystem must be true")
    if context.get("privileged"):
        problems.append(f"container {name}: must not be privileged")
    capabilities = context.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
        problems.append(f"container {name}: capabilities must drop ALL and add none")
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"container {name}: seccompProfile must be RuntimeDefault")
    return problems


def container_problems(container: Doc, pod_context: Doc, tmp_volumes: set[str]) -> list[str]:
    name = container.get("name")
    problems = command_problems(container) + security_problems(container, pod_context)
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts", [])}
    if mounts.get("/tmp") not in tmp_volumes:
        problems.append(
            f"container {name}: mount an emptyDir at /tmp (the root filesystem is read-only)"
        )
    requests = container.get("resources", {}).get("requests", {})
    missing = [r for r in ("cpu", "memory") if r not in requests]
    if missing:
        problems.append(f"container {name}: resources.requests must set {', '.join(missing)}")
    image = str(container.get("image", ""))
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        problems.append(f"container {name}: image {image!r} needs a fixed tag (not latest)")
    return problems


def worker_problems(workload: Workload, settings: AsyncJobsConfig) -> list[str]:
    problems: list[str] = []
    if workload.argv != WORKER_ARGV:
        problems.append(
            f"the worker must run exactly {' '.join(WORKER_ARGV)}; runs {' '.join(workload.argv)}"
        )
    grace = workload.pod.get("terminationGracePeriodSeconds", 30)
    needed = settings.drain_timeout_s + HARD_MARGIN_S + MANAGER_POLL_S + MIN_SLACK_S
    if grace < needed:
        problems.append(
            f"terminationGracePeriodSeconds {grace} < DRAIN_TIMEOUT {settings.drain_timeout_s:g} "
            f"+ HARD_MARGIN_S {HARD_MARGIN_S:g} + manager poll {MANAGER_POLL_S:g} + slack "
            f"{MIN_SLACK_S:g} = {needed:g}: Kubernetes would SIGKILL a draining worker"
        )
    problems += probe_problems(workload, settings.health_port)
    return problems


def probe_problems(workload: Workload, health_port: int | None) -> list[str]:
    if health_port is None:
        return ["ASYNCJOBS_HEALTH_PORT is not set: the worker serves no probes"]
    container = workload.containers[0]
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    problems: list[str] = []
    if health_port not in ports.values():
        problems.append(f"no containerPort {health_port} (ASYNCJOBS_HEALTH_PORT)")
    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        get = container.get(probe, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != path or port != health_port:
            problems.append(
                f"{probe} must GET {path} on ASYNCJOBS_HEALTH_PORT {health_port}; "
                f"got {get.get('path')} on port {port}"
            )
    return problems


def scheduler_problems(workload: Workload) -> list[str]:
    problems: list[str] = []
    if workload.argv != SCHEDULER_ARGV:
        problems.append(
            f"the scheduler must run exactly {' '.join(SCHEDULER_ARGV)}; runs "
            f"{' '.join(workload.argv)}"
        )
    replicas = workload.deployment["spec"].get("replicas", 1)
    if replicas < SCHEDULER_REPLICAS:
        problems.append(
            f"replicas {replicas}: run {SCHEDULER_REPLICAS} schedulers (safe: "
            "exactly-once firing per tick), so one keeps firing while the other is down"
        )
    note = workload.deployment["metadata"].get("annotations", {}).get(SCHEDULER_ANNOTATION, "")
    if "exactly once" not in note:
        problems.append(
            f"annotation {SCHEDULER_ANNOTATION} must say why {SCHEDULER_REPLICAS} "
            "replicas are safe (each tick fires exactly once: claims in Redis)"
        )
    return problems


def web_problems(workload: Workload) -> list[str]:
    argv = workload.argv
    problems: list[str] = []
    if len(argv) < 2 or ":" not in argv[1] or argv[1].startswith("-"):
        problems.append(f"uvicorn needs the ASGI application (module:attribute) first; runs {argv}")
    try:
        graceful = float(argv[argv.index("--timeout-graceful-shutdown") + 1])
    except (ValueError, IndexError):
        return [*problems, "uvicorn needs --timeout-graceful-shutdown N (below the grace period)"]
    pre_stop = workload.containers[0].get("lifecycle", {}).get("preStop", {})
    sleep_s = pre_stop.get("sleep", {}).get("seconds")
    if not sleep_s:
        return [*problems, "a preStop sleep lets the endpoints drain before uvicorn stops"]
    grace = workload.pod.get("terminationGracePeriodSeconds", 30)
    if grace < sleep_s + graceful + MIN_SLACK_S:
        problems.append(
            f"terminationGracePeriodSeconds {grace} < preStop sleep {sleep_s} + "
            f"--timeout-graceful-shutdown {graceful:g} + slack {MIN_SLACK_S:g}"
        )
    return problems
