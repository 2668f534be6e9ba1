"""Our rules for KEDA's objects (the overlays' keda.yaml say why). The central one, that
the formula reads asyncjobs' backlog in every queue state, is in ``backlog_formula``."""

from __future__ import annotations

import re
from collections.abc import Callable

from asyncjobs.brokers.transport import transport_for
from asyncjobs.config import AsyncJobsConfig
from tests.k8s import keda_model
from tests.k8s.backlog_formula import check_formula_counts_backlog, queue_of
from tests.k8s.keda_model import FormulaError
from tests.k8s.manifests import Doc, Manifests, Workload, ref
from tests.k8s.policy_objects import redis_credentials_problems

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HPA_NAME_MAX = 63
TRIGGER_TYPE = {"redis": "redis-streams", "rabbitmq": "rabbitmq"}  # transport names


def check_keda_policy(manifests: Manifests) -> list[str]:
    problems: list[str] = []
    targets: dict[str, str] = {}
    for so in manifests.of_kind("ScaledObject"):
        target = so.get("spec", {}).get("scaleTargetRef", {}).get("name", "")
        if target in targets:
            problems.append(
                f"{ref(so)}: Deployment/{target} is already scaled by "
                f"{targets[target]} (one ScaledObject per workload)"
            )
        targets[target] = ref(so)
        problems += [f"{ref(so)}: {p}" for p in scaled_object_problems(manifests, so)]
    worker = manifests.workload("worker")
    if worker.name not in targets:
        problems.append(f"{worker.ref} has no ScaledObject")
    return problems


def scaled_object_problems(manifests: Manifests, so: Doc) -> list[str]:
    spec = so.get("spec", {})
    target_ref = spec.get("scaleTargetRef", {})
    deployment = manifests.find(target_ref.get("kind", "Deployment"), target_ref.get("name", ""))
    if deployment is None:
        return [f"scaleTargetRef {target_ref} is not a rendered Deployment"]
    workload = Workload(deployment)
    settings = manifests.settings(workload)
    if isinstance(settings, str) or workload.role != "worker":
        return [f"scales {workload.ref}, which does not run a taskiq worker with valid settings"]
    problems = bounds_problems(so, deployment)
    problems += modifiers_problems(spec, settings)
    problems += trigger_problems(manifests, spec, settings)
    if not problems:
        problems += check_formula_counts_backlog(spec, settings)
    return problems


def bounds_problems(so: Doc, deployment: Doc) -> list[str]:
    spec = so["spec"]
    problems: list[str] = []
    if len(f"keda-hpa-{so['metadata']['name']}") > HPA_NAME_MAX:
        problems.append(f"name too long: keda-hpa-<name> must fit in {HPA_NAME_MAX} characters")
    minimum, maximum = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if minimum != 0:
        problems.append(f"minReplicaCount {minimum}: 0 (no worker pods while the queues are empty)")
    if maximum < max(1, minimum):
        problems.append(f"maxReplicaCount {maximum} < minReplicaCount {minimum} (or < 1)")
    if "idleReplicaCount" in spec:
        problems.append(
            "idleReplicaCount: leave it unset (minReplicaCount 0 already scales to zero)"
        )
    if "replicas" in deployment.get("spec", {}):
        problems.append(
            f"{ref(deployment)} sets spec.replicas: KEDA owns the count, every "
            "`kubectl apply` would reset it"
        )
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
    window = behavior.get("scaleDown", {}).get("stabilizationWindowSeconds")
    if not isinstance(window, int) or window <= 0:
        problems.append(
            "advanced.horizontalPodAutoscalerConfig.behavior.scaleDown."
            "stabilizationWindowSeconds must be > 0 (scale in on a settled backlog)"
        )
    return problems


def modifiers_problems(spec: Doc, settings: AsyncJobsConfig) -> list[str]:
    modifiers = spec.get("advanced", {}).get("scalingModifiers")
    if not modifiers:
        return ["advanced.scalingModifiers is missing: add the queues' triggers up in a formula"]
    problems: list[str] = []
    target = _number(modifiers.get("target"))
    if target is None or target <= 0:
        problems.append(f"scalingModifiers.target {modifiers.get('target')!r} must be a number > 0")
    elif target > settings.worker_concurrency:
        problems.append(
            f"scalingModifiers.target {target:g} (backlog per worker pod) > "
            f"WORKER_CONCURRENCY {settings.worker_concurrency}: pods would count "
            "as busy enough while messages wait"
        )
    activation = _number(modifiers.get("activationTarget"))
    if activation is None or not 0 <= activation < 1:
        problems.append(
            f"scalingModifiers.activationTarget {modifiers.get('activationTarget')!r} "
            "must be set and < 1: one message must wake a worker Deployment at zero"
        )
    if modifiers.get("metricType") != "AverageValue":
        problems.append("scalingModifiers.metricType must be AverageValue (backlog per pod)")
    return problems + formula_problems(spec, str(modifiers.get("formula", "")))


def formula_problems(spec: Doc, formula: str) -> list[str]:
    """The triggers' names are identifiers, unique, and exactly the formula's names."""
    problems: list[str] = []
    names = [str(t.get("name", "")) for t in spec.get("triggers", [])]
    bad = [n for n in names if not IDENTIFIER.match(n)]
    if bad:
        problems.append(
            f"trigger names {bad} must be set and usable in the formula (letters, digits, _)"
        )
    if len(set(names)) != len(names):
        problems.append(f"trigger names must be unique: {names}")
    try:
        used = keda_model.formula_names(formula)
    except FormulaError as exc:
        return [*problems, f"scalingModifiers.formula: {exc}"]
    if used - set(names):
        problems.append(
            f"scalingModifiers.formula names {sorted(used - set(names))}, "
            f"which are not trigger names ({names})"
        )
    if set(names) - used:
        problems.append(f"triggers {sorted(set(names) - used)} are not in scalingModifiers.formula")
    return problems


def trigger_problems(manifests: Manifests, spec: Doc, settings: AsyncJobsConfig) -> list[str]:
    transport = transport_for(settings.broker_url, "BROKER_URL")
    wanted_type = TRIGGER_TYPE.get(transport.name)
    queues = settings.worker_queues or settings.queues
    problems: list[str] = []
    covered: list[str] = []
    for trigger in spec.get("triggers", []):
        name, metadata = trigger.get("name"), trigger.get("metadata", {})
        if trigger.get("type") != wanted_type:
            problems.append(
                f"trigger {name}: type {trigger.get('type')!r}, expected "
                f"{wanted_type!r} for BROKER_URL's {transport.name}"
            )
            continue
        if trigger.get("metricType"):
            problems.append(
                f"trigger {name}: drop metricType (scalingModifiers.metricType decides)"
            )
        queue = queue_of(trigger, settings.key_prefix)
        if queue is None or queue not in queues:
            problems.append(
                f"trigger {name}: reads {metadata.get('stream') or metadata.get('queueName')!r}, "
                f"not a queue of this worker ({settings.key_prefix} + {list(queues)})"
            )
        else:
            covered.append(queue)
        problems += [f"trigger {name}: {p}" for p in RULES[trigger["type"]](metadata)]
        found, params = auth_problems(manifests, trigger)
        problems += found
        if trigger["type"] == "redis-streams" and not found:
            db = str(metadata.get("databaseIndex", "0"))
            problems += [
                f"trigger {name}: {p}"
                for p in redis_credentials_problems(settings.broker_url, params, db)
            ]
    if sorted(covered) != sorted(queues):
        problems.append(
            f"one trigger per worker queue {sorted(queues)} (ASYNCJOBS_WORKER_QUEUES); "
            f"triggers read {sorted(covered)}"
        )
    return problems


def redis_rules(metadata: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if "lagCount" in metadata or "consumerGroup" in metadata:
        problems.append(
            "use streamLength without consumerGroup (XLEN = lag + pending): lagCount "
            "reads Redis's lag, NULL (-1 in KEDA) when tasks finish out of order, and "
            "pendingEntriesCount fails (NOGROUP) when the group is gone"
        )
    if "streamLength" not in metadata:
        problems.append("set streamLength (XLEN of the stream)")
    return problems


def rabbitmq_rules(metadata: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if metadata.get("protocol") != "http":
        problems.append(
            "protocol must be http: over AMQP KEDA counts ready messages only, "
            "not the unacknowledged (running) ones"
        )
    if metadata.get("mode") != "QueueLength":
        problems.append("mode must be QueueLength (messages, not a rate)")
    if str(metadata.get("excludeUnacknowledged", "false")).lower() != "false":
        problems.append("excludeUnacknowledged would not count running tasks")
    if str(metadata.get("useRegex", "false")).lower() != "false":
        problems.append("useRegex: name one queue per trigger")
    return problems


RULES: dict[str, Callable[[dict[str, str]], list[str]]] = {
    "redis-streams": redis_rules,
    "rabbitmq": rabbitmq_rules,
}


def auth_problems(manifests: Manifests, trigger: Doc) -> tuple[list[str], dict[str, str]]:
    """Problems of the trigger's TriggerAuthentication, and the parameters it gives."""
    name = trigger.get("authenticationRef", {}).get("name")
    ta = manifests.find("TriggerAuthentication", name) if name else None
    if ta is None:
        return [
            f"trigger {trigger.get('name')}: authenticationRef {name!r} is not a rendered "
            "TriggerAuthentication (credentials never go in trigger metadata)"
        ], {}
    problems: list[str] = []
    params: dict[str, str] = {}
    for item in ta.get("spec", {}).get("secretTargetRef", []):
        values = manifests.data_of("Secret", item.get("name", ""))
        if values is None or item.get("key") not in values:
            problems.append(f"{ref(ta)}: Secret/{item.get('name')} has no key {item.get('key')!r}")
        else:
            params[item["parameter"]] = values[item["key"]]
    if trigger["type"] == "redis-streams":
        if "address" not in params and not {"host", "port"} <= set(params):
            problems.append(
                f"{ref(ta)}: give the redis-streams scaler address (host:port) or host and port"
            )
        if "://" in params.get("address", ""):
            problems.append(f"{ref(ta)}: address is host:port, not a URL")
    elif not params.get("host", "").startswith(("http://", "https://")):
        problems.append(f"{ref(ta)}: host must be the management API's http(s):// URL")
    return problems, params


def _number(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
