"""The stores a transport may offer beside its queues: task results, the schedulers'
dynamic schedules and exactly-once claims (see ``brokers.transport.Capabilities``), and
the workers' registry and per-minute counters (``MonitorStore``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskiq.abc.result_backend import AsyncResultBackend

from asyncjobs.brokers.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ResultStoreOptions:
    ttl_s: int = 86_400  # how long a result (and its attempt record) is kept
    key_prefix: str = "asyncjobs"
    retry_for_s: float = 15.0  # how long a write is retried through a lost connection


class ResultStore(AsyncResultBackend[Any], ABC):
    """taskiq's result backend (results as JSON, never pickled), plus the record of a
    task's failed attempts the worker keeps while it retries."""

    @abstractmethod
    async def record_attempt(self, task_id: str, entry: dict[str, Any]) -> None:
        """Append a failed attempt (``attempt``, ``error_type``, ``error_message``,
        ``at``) to the task's record, kept as long as its result."""

    @abstractmethod
    async def attempts(self, task_id: str) -> list[dict[str, Any]]:
        """The task's failed attempts so far, oldest first."""

    async def set_status(self, task_id: str, body: bytes, *, if_absent: bool = False) -> None:
        """Keep ``body`` (a JSON document: where the task stands, for APIs such as
        Django's ``TaskResult``) beside the task's result, as long as results; with
        ``if_absent``, only when the task has none yet (a sender's first word must not
        overwrite a worker's). A store that cannot keep one raises."""
        raise ConfigurationError(f"{type(self).__name__} keeps no task status")

    async def get_status(self, task_id: str) -> bytes | None:
        """The task's status document, None when it has none (or it expired)."""
        raise ConfigurationError(f"{type(self).__name__} keeps no task status")

    def forget_connections(self) -> None:
        """Drop connections bound to an event loop that no longer runs."""


class ScheduleStorage(ABC):
    """Where every scheduler replica keeps the dynamic schedules and its claims.

    Schedules are kept as opaque JSON bodies by id (``asyncjobs.schedules.store`` encodes
    and validates them). A claim of (schedule id, tick) is taken by exactly one
    scheduler: the first; a ``pending`` claim older than ``takeover_ms`` may be taken
    over (its scheduler died before sending); once ``mark_sent`` it is final. Claims
    expire after ``ttl_ms``; the newest tick sent is kept for ``last_ttl_s``.

    Any schedule, static or dynamic, can be paused by id: schedulers send none of its
    ticks while it is; resuming records when, so a catch-up never reaches back into
    the pause.
    """

    location: str  # for messages: where the storage is (a URL without secrets)

    # -- dynamic schedules -------------------------------------------------------
    @abstractmethod
    async def put(self, schedule_id: str, body: bytes) -> None: ...

    @abstractmethod
    async def delete(self, schedule_id: str) -> bool:
        """Remove one; whether it existed."""

    @abstractmethod
    async def get(self, schedule_id: str) -> bytes | None: ...

    @abstractmethod
    async def all(self) -> dict[str, bytes]:
        """Every stored body by id (ids that are not text are shown decoded with
        replacement characters)."""

    # -- claims ------------------------------------------------------------------
    @abstractmethod
    async def claim(
        self, schedule_id: str, tick_ms: int, owner: str, ttl_ms: int, takeover_ms: int
    ) -> bool:
        """True if ``owner`` is to send this tick."""

    @abstractmethod
    async def mark_sent(self, schedule_id: str, tick_ms: int, owner: str, last_ttl_s: int) -> None:
        """The claim is final; remember ``tick_ms`` as the newest sent (if it is)."""

    @abstractmethod
    async def release(self, schedule_id: str, tick_ms: int, owner: str) -> None:
        """Give up ``owner``'s pending claim (the send failed)."""

    @abstractmethod
    async def last_sent_ms(self, schedule_id: str) -> int | None: ...

    # -- pauses ------------------------------------------------------------------
    @abstractmethod
    async def set_paused(self, schedule_id: str, paused: bool, resumed_ttl_s: int) -> bool:
        """Pause or resume; whether that changed anything. A resume of a paused schedule
        remembers its time (``resumed_ms``) for ``resumed_ttl_s``."""

    @abstractmethod
    async def paused(self) -> set[str]:
        """The ids of the paused schedules."""

    @abstractmethod
    async def resumed_ms(self, schedule_id: str) -> int | None:
        """When the schedule was last resumed (unix ms), if that is remembered."""

    async def aclose(self) -> None:  # noqa: B027 - most storages hold nothing to close
        """Close what the storage opened."""


# The per-minute outcomes workers count per queue (``MonitorStore.add_counts``), and the
# field a minute's backlog sample is kept in beside them.
OUTCOMES = ("succeeded", "failed", "dead_lettered")
BACKLOG = "backlog"


class MonitorStore(ABC):
    """What workers keep for an operator's console: a registry of live workers and
    per-minute counters per queue. Everything expires.

    - Registry: each worker's document (opaque JSON bytes) by worker id, registered
      again at every heartbeat with a TTL; a worker that stops heartbeating (killed)
      disappears when its TTL ends, one that unregisters (drained) at once.
    - Counters: per (queue, minute) the number of runs by outcome (``OUTCOMES``) and,
      when one worker sampled it that minute, the queue's backlog (``BACKLOG``).
    """

    location: str  # for messages: where the store is (a URL without secrets)

    @abstractmethod
    async def register(self, worker_id: str, document: bytes, ttl_s: float) -> None:
        """Keep ``document`` as the worker's for ``ttl_s`` (also the heartbeat)."""

    @abstractmethod
    async def unregister(self, worker_id: str) -> None: ...

    @abstractmethod
    async def workers(self) -> dict[str, bytes]:
        """The documents of live workers by id (expired ones are gone)."""

    @abstractmethod
    async def add_counts(
        self, minute_s: int, counts: Mapping[tuple[str, str], int], ttl_s: int
    ) -> None:
        """Add ``counts`` ((queue, outcome) -> n) to the minute starting at ``minute_s``
        (unix seconds), kept ``ttl_s``; at once (one round trip)."""

    @abstractmethod
    async def counts(
        self, queues: Sequence[str], first_minute_s: int, last_minute_s: int
    ) -> dict[str, dict[int, dict[str, int]]]:
        """{queue: {minute_s: {field: n}}} for the minutes from first to last (both
        included, 60 s apart) that have any; fields are ``OUTCOMES`` and ``BACKLOG``.
        A field whose value is not a number is left out."""

    @abstractmethod
    async def claim_sample(self, minute_s: int, owner: str, ttl_s: int) -> bool:
        """True for the first owner to ask for this minute (the one to sample the
        backlog), false for every other."""

    @abstractmethod
    async def add_backlog(self, minute_s: int, queue: str, backlog: int, ttl_s: int) -> None:
        """Keep the queue's backlog sampled in that minute beside its counts."""

    async def aclose(self) -> None:  # noqa: B027 - most stores hold nothing to close
        """Close what the store opened."""
