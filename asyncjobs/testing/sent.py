"""What a test sees of its sends: one ``SentTask`` per message the broker took.

The recorder is an ordinary hook (``on_sent``): sends from async code, from sync code
(``kiq_sync``, which sends from asyncjobs' own loop) and on commit all pass through it,
and so do sends made by tasks while a test runs them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from taskiq.message import TaskiqMessage

from asyncjobs.brokers import envelope
from asyncjobs.hooks import Hooks


@dataclass(frozen=True, slots=True)
class SentTask:
    """One send: the task, its arguments as the caller passed them (before encoding),
    its queue and labels, and when it was due (None: at once)."""

    task_name: str
    task_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    labels: dict[str, Any]
    sent_at: float  # unix seconds
    due_at: float | None = None

    @property
    def delay_s(self) -> float | None:
        """How long after the send it was due (``delay=``/``eta=``); None: at once."""
        return None if self.due_at is None else max(0.0, self.due_at - self.sent_at)

    def matches(
        self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None, queue: str | None
    ) -> bool:
        """Whether this send had these arguments and queue (None: any)."""
        return (
            (args is None or tuple(args) == self.args)
            and (kwargs is None or kwargs == self.kwargs)
            and (queue is None or queue == self.queue)
        )

    def describe(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        delay = "" if self.delay_s is None else f", delay {self.delay_s:g} s"
        return f"{self.task_name}({', '.join(shown)}) on queue {self.queue!r}{delay}"


@dataclass(eq=False)
class SendRecorder(Hooks):
    """Records every message the broker took, in order, from any thread."""

    default_queue: str
    sent: list[SentTask] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def on_sent(self, message: TaskiqMessage) -> None:
        labels = dict(message.labels)
        queue = labels.get(envelope.QUEUE)
        sent = SentTask(
            task_name=message.task_name,
            task_id=message.task_id,
            args=tuple(message.args),
            kwargs=dict(message.kwargs),
            queue=queue if isinstance(queue, str) and queue else self.default_queue,
            labels=labels,
            sent_at=time.time(),
            due_at=envelope.due_of(labels),
        )
        with self._lock:
            self.sent.append(sent)

    def snapshot(self) -> list[SentTask]:
        with self._lock:
            return list(self.sent)

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
