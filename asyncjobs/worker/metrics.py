"""Worker metrics through the OpenTelemetry metrics API.

``MetricsObserver`` turns worker events into instruments of the meter ``asyncjobs``:

=================================  =============  ========================  ===============
instrument                         kind           attributes                unit
=================================  =============  ========================  ===============
``asyncjobs.messages.received``    counter        queue                     ``{message}``
``asyncjobs.tasks.started``        counter        queue, task               ``{task}``
``asyncjobs.tasks.succeeded``      counter        queue, task               ``{task}``
``asyncjobs.tasks.failed``         counter        queue, task               ``{task}``
``asyncjobs.tasks.retried``        counter        queue, task               ``{task}``
``asyncjobs.tasks.dead_lettered``  counter        queue, task, reason       ``{task}``
``asyncjobs.tasks.cut_off``        counter        queue, task               ``{task}``
``asyncjobs.tasks.running``        up-down (obs.) queue, task               ``{task}``
``asyncjobs.task.duration``        histogram      queue, task               ``s``
``asyncjobs.task.queue_wait``      histogram      queue, task               ``s``
=================================  =============  ========================  ===============

``failed`` counts every failed attempt (retried or not); ``dead_lettered`` every dead
letter, also those that never ran (undecodable: task ``""``; unknown task, too many
deliveries, invalid arguments). ``queue_wait`` runs from when the message became
deliverable (sent, or due after a delay or backoff: ``Delivery.enqueued_at``) to its
start, for first deliveries only: when a message that a crashed worker held became
deliverable again is unknown on RabbitMQ (the requeued message keeps its timestamp).
On RabbitMQ it is up to 1 s too long (AMQP timestamps are whole seconds).

By default the instruments come from the global ``MeterProvider``: OpenTelemetry's
no-op until the application configures the SDK (e.g. for OTLP), costing ~2 us per task;
with the SDK, ~60 us per task (five measurements).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.hooks import Hooks, Outcome, Run

METER_NAME = "asyncjobs"
# Seconds, 1 ms to 10 min: tasks are mostly short I/O, some run for minutes.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
HISTOGRAMS = ("asyncjobs.task.duration", "asyncjobs.task.queue_wait")
FLUSH_TIMEOUT_MS = 2000  # within the drain's hard margin (HARD_MARGIN_S)
PRUNE_EVERY = 256  # task starts between sweeps of deliveries that never reported finishing

Attributes = dict[str, str]


class MetricsHooks(Hooks):
    """Records what the worker's hooks tell as OpenTelemetry metrics (see the module
    docstring)."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        from asyncjobs import __version__

        self._provider = meter_provider
        if meter_provider is None:
            # The global API's meter is a proxy: a provider the application sets later
            # (after the worker started) still receives everything from then on.
            meter = metrics.get_meter(METER_NAME, __version__)
        else:
            meter = meter_provider.get_meter(METER_NAME, __version__)
        self._received = meter.create_counter(
            "asyncjobs.messages.received", "{message}", "Messages fetched from the broker"
        )
        self._started = meter.create_counter(
            "asyncjobs.tasks.started", "{task}", "Task runs started"
        )
        self._succeeded = meter.create_counter(
            "asyncjobs.tasks.succeeded", "{task}", "Task runs that succeeded"
        )
        self._failed = meter.create_counter(
            "asyncjobs.tasks.failed", "{task}", "Task runs that failed (retried or not)"
        )
        self._retried = meter.create_counter(
            "asyncjobs.tasks.retried", "{task}", "Failed task runs whose next attempt is scheduled"
        )
        self._dead_lettered = meter.create_counter(
            "asyncjobs.tasks.dead_lettered", "{task}", "Messages dead-lettered, run or not"
        )
        self._cut_off = meter.create_counter(
            "asyncjobs.tasks.cut_off", "{task}", "Task runs cancelled at the drain deadline"
        )
        self._duration = meter.create_histogram(
            "asyncjobs.task.duration",
            "s",
            "Run time of a task",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._queue_wait = meter.create_histogram(
            "asyncjobs.task.queue_wait",
            "s",
            "Time from when a message became deliverable to when its task started",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        meter.create_observable_up_down_counter(
            "asyncjobs.tasks.running",
            [self._observe_running],
            "{task}",
            "Tasks running now",
        )
        # What runs, for the running gauge. A delivery that is settled is no longer
        # running, even when after_run never came (the receiver failed settling it).
        self._running: dict[Delivery, tuple[str, str]] = {}
        self._starts = 0
        self._task_attributes: dict[tuple[str, str], Attributes] = {}
        self._queue_attributes: dict[str, Attributes] = {}
        self._dead_attributes: dict[tuple[str, str, str], Attributes] = {}

    # -- hooks -------------------------------------------------------------------
    async def on_fetched(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._received.add(1, self._of_queue(delivery.queue))

    async def before_run(self, run: Run) -> None:
        delivery = run.delivery
        key = (delivery.queue, run.task_name)
        attributes = self._of_task(key)
        self._started.add(1, attributes)
        if delivery.enqueued_at is not None and delivery.delivery_count == 1:
            # Clocks of sender, broker and worker differ a little: never negative.
            self._queue_wait.record(max(0.0, time.time() - delivery.enqueued_at), attributes)
        self._running[delivery] = key
        self._starts += 1
        if self._starts % PRUNE_EVERY == 0:
            self._prune()

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        self._running.pop(run.delivery, None)
        if outcome is Outcome.POSTPONED:  # never started
            return
        attributes = self._of_task((run.queue, run.task_name))
        self._duration.record(duration_s, attributes)
        if outcome is Outcome.SUCCEEDED:
            self._succeeded.add(1, attributes)
        elif outcome is Outcome.RETRIED:
            self._failed.add(1, attributes)
            self._retried.add(1, attributes)
        elif outcome is Outcome.FAILED:  # dead-lettered: counted by dead_lettered too
            self._failed.add(1, attributes)
        elif outcome is Outcome.CUT_OFF:
            self._cut_off.add(1, attributes)

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        key = (delivery.queue, record.task_name, record.reason.value)
        attributes = self._dead_attributes.get(key)
        if attributes is None:  # not _of_task: an unknown name must not join the gauge
            attributes = self._dead_attributes[key] = dict(
                zip(("queue", "task", "reason"), key, strict=True)
            )
        self._dead_lettered.add(1, attributes)

    async def on_worker_stopped(self) -> None:
        self._prune()
        self.flush()

    def flush(self) -> None:
        """Export what was recorded, now: a worker child ends with ``os._exit`` (as every
        multiprocessing child does), so the SDK's own flush at exit never runs there and
        the last export interval of a stopping worker would be lost."""
        provider = self._provider or metrics.get_meter_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:  # an SDK provider; the API's no-op has none
            force_flush(timeout_millis=FLUSH_TIMEOUT_MS)

    # -- the running gauge ---------------------------------------------------------
    def _observe_running(self, options: CallbackOptions) -> Iterable[Observation]:
        # Called by the SDK on collection, possibly from another thread (a Prometheus
        # scrape, an OTLP export): read copies (dict.copy() is atomic under the GIL).
        # Copied in this order, every key of ``running`` is in ``known``.
        running, known = self._running.copy(), self._task_attributes.copy()
        counts = dict.fromkeys(known, 0)  # 0 rather than a gap once a task was seen
        for delivery, key in running.items():
            if not delivery.closed:
                counts[key] += 1
        return [Observation(n, known[key]) for key, n in counts.items()]

    def _prune(self) -> None:
        for delivery in [d for d in self._running if d.closed]:
            del self._running[delivery]

    # -- attribute sets, built once per queue and task ---------------------------
    def _of_queue(self, queue: str) -> Attributes:
        attributes = self._queue_attributes.get(queue)
        if attributes is None:
            attributes = self._queue_attributes[queue] = {"queue": queue}
        return attributes

    def _of_task(self, key: tuple[str, str]) -> Attributes:
        attributes = self._task_attributes.get(key)
        if attributes is None:
            attributes = self._task_attributes[key] = {"queue": key[0], "task": key[1]}
        return attributes
