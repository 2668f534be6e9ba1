"""KEDA's objects in the overlays, checked offline: every rule fails on a defect planted
in the rendered ScaledObject, TriggerAuthentication or Secrets (in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.checks import problems
from tests.k8s.edits import (
    Edit,
    container,
    deployment,
    drop,
    drop_emails_trigger,
    duplicate_scaled_object,
    lag_plus_pending,
    modifiers,
    one,
    scaled,
    secret,
    set_key,
    trigger,
)
from tests.k8s.manifests import rendered

# (overlay, defect, the message the checks must give)
DEFECTS: list[tuple[str, str, Edit, str]] = [
    # KEDA's CRDs, strict
    (
        "redis",
        "misspelt ScaledObject field",
        lambda d: set_key(scaled(d), "minReplicaCont", 0),
        "KEDA v2.20.2 CRD schema: spec: Additional properties are not allowed ('minReplicaCont'",
    ),
    (
        "rabbitmq",
        "TriggerAuthentication without key",
        lambda d: drop(one(d, "TriggerAuthentication")["spec"]["secretTargetRef"][0], "key"),
        "KEDA v2.20.2 CRD schema: spec.secretTargetRef.0: 'key' is a required property",
    ),
    # KEDA's scaler parameters
    (
        "redis",
        "unknown trigger key",
        lambda d: set_key(trigger(d)["metadata"], "streamLenght", "5"),
        "unknown metadata key 'streamLenght' for redis-streams",
    ),
    (
        "rabbitmq",
        "credential in metadata",
        lambda d: set_key(trigger(d)["metadata"], "username", "guest"),
        "'username' cannot be set in a rabbitmq trigger's metadata",
    ),
    (
        "rabbitmq",
        "parameter a TriggerAuthentication cannot give",
        lambda d: one(d, "TriggerAuthentication")["spec"]["secretTargetRef"].append(
            {"parameter": "queueName", "name": "asyncjobs-keda", "key": "host"}
        ),
        "sets 'queueName', which a rabbitmq scaler does not read from a TriggerAuthentication",
    ),
    # ScaledObject
    (
        "redis",
        "never scales to zero",
        lambda d: set_key(scaled(d), "minReplicaCount", 1),
        "minReplicaCount 1: 0",
    ),
    (
        "rabbitmq",
        "no advanced section",
        lambda d: drop(scaled(d), "advanced"),
        "advanced.scalingModifiers is missing",
    ),
    (
        "rabbitmq",
        "no stabilization window",
        lambda d: drop(
            scaled(d)["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"],
            "stabilizationWindowSeconds",
        ),
        "scaleDown.stabilizationWindowSeconds must be > 0",
    ),
    (
        "redis",
        "replicas fixed in the Deployment",
        lambda d: set_key(deployment(d, "worker")["spec"], "replicas", 3),
        "Deployment/asyncjobs-worker sets spec.replicas: KEDA owns the count",
    ),
    (
        "redis",
        "formula names a missing trigger",
        lambda d: set_key(modifiers(d), "formula", "default_backlog + emails_lag"),
        "scalingModifiers.formula names ['emails_lag'], which are not trigger names",
    ),
    (
        "redis",
        "trigger left out of the formula",
        lambda d: set_key(modifiers(d), "formula", "default_backlog"),
        "triggers ['emails_backlog'] are not in scalingModifiers.formula",
    ),
    (
        "redis",
        "formula beyond arithmetic",
        lambda d: set_key(modifiers(d), "formula", "default_backlog ** emails_backlog"),
        "scalingModifiers.formula: operator Pow",
    ),
    (
        "rabbitmq",
        "formula averages",
        lambda d: set_key(modifiers(d), "formula", "(default_backlog + emails_backlog) / 2"),
        "the formula reads 1.5 from KEDA's trigger values",
    ),
    ("redis", "unnamed trigger", lambda d: drop(trigger(d, 1), "name"), "trigger names ['']"),
    (
        "redis",
        "duplicate trigger names",
        lambda d: set_key(trigger(d, 1), "name", "default_backlog"),
        "trigger names must be unique",
    ),
    (
        "redis",
        "activation needs many messages",
        lambda d: set_key(modifiers(d), "activationTarget", "5"),
        "scalingModifiers.activationTarget '5' must be set and < 1",
    ),
    (
        "rabbitmq",
        "target above concurrency",
        lambda d: set_key(modifiers(d), "target", "1000"),
        "scalingModifiers.target 1000 (backlog per worker pod) > WORKER_CONCURRENCY 100",
    ),
    (
        "redis",
        "metric type",
        lambda d: set_key(modifiers(d), "metricType", "Value"),
        "scalingModifiers.metricType must be AverageValue",
    ),
    (
        "redis",
        "trigger metric type",
        lambda d: set_key(trigger(d), "metricType", "Value"),
        "trigger default_backlog: drop metricType",
    ),
    (
        "redis",
        "queue without trigger",
        drop_emails_trigger,
        "one trigger per worker queue ['default', 'emails']",
    ),
    (
        "redis",
        "trigger for a queue the worker does not consume",
        lambda d: set_key(container(d, "worker")["env"][0], "value", "default"),
        "trigger emails_backlog: reads 'asyncjobs:emails', not a queue of this worker",
    ),
    (
        "redis",
        "wrong key prefix",
        lambda d: set_key(trigger(d)["metadata"], "stream", "jobs:default"),
        "reads 'jobs:default', not a queue of this worker",
    ),
    (
        "rabbitmq",
        "trigger type of the other broker",
        lambda d: set_key(
            secret(d, "asyncjobs-env"), "ASYNCJOBS_BROKER_URL", "redis://:x@redis:6379/0"
        ),
        "type 'rabbitmq', expected 'redis-streams' for BROKER_URL's redis",
    ),
    (
        "redis",
        "scaled object for a missing Deployment",
        lambda d: set_key(scaled(d)["scaleTargetRef"], "name", "worker"),
        "scaleTargetRef {'name': 'worker'} is not a rendered Deployment",
    ),
    (
        "redis",
        "two ScaledObjects, one workload",
        duplicate_scaled_object,
        "is already scaled by ScaledObject/asyncjobs-worker (one ScaledObject per workload)",
    ),
    (
        "redis",
        "name too long for its HPA",
        lambda d: set_key(one(d, "ScaledObject")["metadata"], "name", "w" * 60),
        "name too long: keda-hpa-<name> must fit in 63 characters",
    ),
    # Redis triggers: the lag + pending, and the scale-to-zero states
    (
        "redis",
        "lagCount + pendingEntriesCount",
        lag_plus_pending,
        "use streamLength without consumerGroup (XLEN = lag + pending)",
    ),
    (
        "redis",
        "no credentials",
        lambda d: drop(trigger(d), "authenticationRef"),
        "authenticationRef None is not a rendered TriggerAuthentication",
    ),
    (
        "redis",
        "Secret key missing",
        lambda d: drop(secret(d, "asyncjobs-keda"), "address"),
        "Secret/asyncjobs-keda has no key 'address'",
    ),
    (
        "redis",
        "Redis URL instead of an address",
        lambda d: set_key(secret(d, "asyncjobs-keda"), "address", "redis://redis:6379/0"),
        "address is host:port, not a URL",
    ),
    (
        "redis",
        "KEDA's address out of step",
        lambda d: set_key(secret(d, "asyncjobs-keda"), "address", "redis-0:6379"),
        "KEDA's address 'redis-0:6379' is not BROKER_URL's 'redis:6379'",
    ),
    (
        "redis",
        "KEDA's password out of step",
        lambda d: set_key(secret(d, "asyncjobs-keda"), "password", "old"),
        "KEDA's password is not BROKER_URL's",
    ),
    (
        "redis",
        "another database",
        lambda d: set_key(trigger(d)["metadata"], "databaseIndex", "1"),
        "databaseIndex '1' is not BROKER_URL's database '0'",
    ),
    # RabbitMQ triggers
    (
        "rabbitmq",
        "AMQP protocol",
        lambda d: set_key(trigger(d)["metadata"], "protocol", "amqp"),
        "protocol must be http: over AMQP KEDA counts ready messages only",
    ),
    (
        "rabbitmq",
        "unacknowledged excluded",
        lambda d: set_key(trigger(d)["metadata"], "excludeUnacknowledged", "true"),
        "excludeUnacknowledged would not count running tasks",
    ),
    (
        "rabbitmq",
        "message rate",
        lambda d: set_key(trigger(d)["metadata"], "mode", "MessageRate"),
        "mode must be QueueLength",
    ),
    (
        "rabbitmq",
        "management URL without scheme",
        lambda d: set_key(secret(d, "asyncjobs-keda"), "host", "rabbitmq:15672"),
        "host must be the management API's http(s):// URL",
    ),
]


@pytest.mark.parametrize(
    ("overlay", "defect", "edit", "expected"),
    DEFECTS,
    ids=[f"{overlay}-{defect}" for overlay, defect, _, _ in DEFECTS],
)
def test_a_planted_keda_defect_is_reported(
    overlay: str, defect: str, edit: Edit, expected: str, keda: Path
) -> None:
    docs = rendered(overlay)
    assert not [p for p in problems(docs, overlay=overlay, keda_dir=keda) if expected in p]
    edit(docs)
    found = problems(docs, overlay=overlay, keda_dir=keda)
    assert any(expected in p for p in found), f"{defect}: expected {expected!r} in {found}"
