"""The worker: the receiver ``taskiq worker`` runs, its per-message pipeline, drain,
probes and metrics."""

from __future__ import annotations

from asyncjobs.worker.receiver import AsyncJobsReceiver
from asyncjobs.worker.settings import WorkerSettings

__all__ = [
    "AsyncJobsReceiver",
    "WorkerSettings",
    "install_receiver",
]


def install_receiver() -> None:
    """Make ``taskiq worker`` use our receiver without a ``--receiver`` flag.

    The CLI resolves its default receiver as ``taskiq.receiver:Receiver`` *after*
    importing the broker module, so the worker entry module (which imports this) swaps
    the name there. An explicit ``--receiver`` is still honoured, and our broker refuses
    to start under a receiver that is not ours (see ReliableBroker.startup).
    """
    import taskiq.receiver

    taskiq.receiver.Receiver = AsyncJobsReceiver  # type: ignore[misc]
