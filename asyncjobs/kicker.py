"""The kicker ``fn.kiq()`` and ``fn.kicker()`` use: taskiq's, plus a failure hook.

Taskiq calls a middleware's ``pre_send`` before a send and ``post_send`` after it, but
nothing when the send fails: a middleware that started something in ``pre_send`` (a
tracing span) never learns how it ended. ``JobKicker`` calls
``on_send_error(task_id, error)`` on every middleware that has one, then re-raises
(``task_id``: the failed message's, None when it failed before it had one).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from taskiq.kicker import AsyncKicker
from taskiq.message import TaskiqMessage
from taskiq.utils import maybe_awaitable

logger = logging.getLogger("asyncjobs")

P = ParamSpec("P")
R = TypeVar("R")

# The id of the message this kiq() prepared, in the caller's context; reset when kiq()
# returns, so a send nested in a send (memory:// runs the task inside kick) cannot
# leave its id behind for the outer one.
_preparing: ContextVar[str | None] = ContextVar("asyncjobs_preparing", default=None)


class JobKicker(AsyncKicker[P, R]):
    async def kiq(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        token = _preparing.set(None)
        try:
            return await super().kiq(*args, **kwargs)
        except Exception as exc:
            task_id = _preparing.get()
            for middleware in self.broker.middlewares:
                hook = getattr(middleware, "on_send_error", None)
                if hook is None:
                    continue
                try:
                    await maybe_awaitable(hook(task_id, exc))
                except Exception:  # a hook must not hide the send's own error
                    logger.exception("on_send_error of %r failed", middleware)
            raise
        finally:
            _preparing.reset(token)

    def _prepare_message(self, *args: Any, **kwargs: Any) -> TaskiqMessage:
        message = super()._prepare_message(*args, **kwargs)
        _preparing.set(message.task_id)
        return message
