"""gunicorn settings of the ``--preload`` test: the master sends a task once it has
loaded the app and before it forks its workers (a deploy notice, say), so each worker
starts with a copy of the master's broker client: its loop's thread gone, its sockets
shared. The workers must send on connections of their own and leave the master's be.
"""

from __future__ import annotations

import os
from typing import Any


def when_ready(server: Any) -> None:
    from example.shop.tasks import record_visit

    record_visit.kiq_sync(os.environ["PRELOAD_VISIT_PAGE"])
