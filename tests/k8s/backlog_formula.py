"""Does the ScaledObject's formula read asyncjobs' backlog? Evaluated, not just read.

For queue states that happen in production (fresh messages, tasks running, tasks
finished out of order so that Redis's lag is NULL, a consumer group lost with Redis's
data, empty), KEDA's value of every trigger (``keda_model``) put through the
ScaledObject's formula must equal the backlog asyncjobs counts (waiting + in flight), and
the ScaledObject must be active exactly when that backlog is not zero: no busy or
backlogged worker Deployment is scaled to zero, and none stays at zero with work queued.
"""

from __future__ import annotations

from asyncjobs.config import AsyncJobsConfig
from tests.k8s import keda_model
from tests.k8s.keda_model import QueueState, StreamState, TriggerError
from tests.k8s.manifests import Doc

State = StreamState | QueueState
EMPTY_STREAM = StreamState(length=0, pending=0, lag=0)
EMPTY_QUEUE = QueueState(ready=0, unacknowledged=0)
# (what happens, KEDA's view of one stream or queue, asyncjobs' backlog of that queue)
REDIS_STATES: list[tuple[str, State, int]] = [
    ("3 messages waiting", StreamState(length=3, pending=0, lag=3), 3),
    ("2 tasks running, 1 waiting", StreamState(length=3, pending=2, lag=1), 3),
    (
        "tasks finished out of order (Redis lag NULL): 1 running, 2 waiting",
        StreamState(length=3, pending=1, lag=None),
        3,
    ),
    ("2 tasks running, none waiting", StreamState(length=2, pending=2, lag=0), 2),
    (
        "consumer group gone with Redis's data, stream re-created by a sender: 2 waiting",
        StreamState(length=2, pending=0, lag=None, group_exists=False),
        2,
    ),
    ("stream never created", StreamState(0, 0, None, group_exists=False, stream_exists=False), 0),
    ("empty", EMPTY_STREAM, 0),
]
RABBIT_STATES: list[tuple[str, State, int]] = [
    ("3 messages ready", QueueState(ready=3, unacknowledged=0), 3),
    ("2 tasks running, 1 ready", QueueState(ready=1, unacknowledged=2), 3),
    ("2 tasks running, none ready", QueueState(ready=0, unacknowledged=2), 2),
    ("empty", EMPTY_QUEUE, 0),
]


def queue_of(trigger: Doc, prefix: str) -> str | None:
    metadata = trigger.get("metadata", {})
    name = (
        metadata.get("stream") if trigger["type"] == "redis-streams" else metadata.get("queueName")
    )
    separator = ":" if trigger["type"] == "redis-streams" else "."
    if not isinstance(name, str) or not name.startswith(prefix + separator):
        return None
    return name[len(prefix) + 1 :]


def check_formula_counts_backlog(spec: Doc, settings: AsyncJobsConfig) -> list[str]:
    """The formula over KEDA's trigger values is asyncjobs' backlog, in every state."""
    modifiers = spec["advanced"]["scalingModifiers"]
    activation = float(modifiers["activationTarget"])
    triggers = spec["triggers"]
    redis = triggers[0]["type"] == "redis-streams"
    states, empty = (REDIS_STATES, EMPTY_STREAM) if redis else (RABBIT_STATES, EMPTY_QUEUE)
    for busy in settings.worker_queues or settings.queues:  # one queue in a state, others empty
        for what, state, backlog in states:
            values: dict[str, float] = {}
            for trigger in triggers:
                here = state if queue_of(trigger, settings.key_prefix) == busy else empty
                try:
                    values[trigger["name"]] = trigger_value(trigger, here)
                except TriggerError as exc:
                    return [
                        f"queue {busy!r}, {what}: trigger {trigger['name']} fails ({exc}); "
                        "with scalingModifiers KEDA then neither scales nor wakes the workers"
                    ]
            value = keda_model.evaluate(modifiers["formula"], values)
            if value != backlog or (value > activation) != (backlog > 0):
                return [
                    f"queue {busy!r}, {what}: the formula reads {value:g} from KEDA's "
                    f"trigger values {values}, but the backlog is {backlog}"
                ]
    return []


def trigger_value(trigger: Doc, state: State) -> int:
    if isinstance(state, StreamState):
        return keda_model.redis_streams_metric(trigger["metadata"], state)
    return keda_model.rabbitmq_metric(trigger["metadata"], state)
