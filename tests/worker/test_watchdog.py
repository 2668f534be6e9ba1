"""The drain watchdog ends the process by its deadline even when nothing else runs."""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPT = """
import logging, time
from asyncjobs.worker.drain import Watchdog
logging.basicConfig(level=logging.INFO)
Watchdog(0.3).start()
time.sleep(60)  # a blocked event loop / a broker call that never returns
"""


def test_watchdog_exits_the_process_at_the_deadline() -> None:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    assert time.monotonic() - began < 10
    assert "drain overran its 0.3 s deadline" in proc.stderr
