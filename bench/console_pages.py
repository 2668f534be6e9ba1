"""How fast the operator console's dead-letter pages render with many letters.

    python -m bench.console_pages [--letters 100000] [--rounds 7]

The example project (``example.settings``, a throwaway sqlite file) on the Redis of
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) under a key prefix of its own:
``--letters`` dead letters are written as a worker writes them, then a superuser's
Django test client GETs each page ``--rounds`` times: the whole server side of a request
(middleware, the admin's wrapper, the broker reads, the template), not the browser's
drawing. Prints the median and the slowest round beside the goal (500 ms). Numbers, not
assertions; the keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

GOAL_MS = 500.0
QUEUE = "default"
RARE = "unknown_task"  # the reason of one letter in 1,000


def seed(redis_url: str, prefix: str, count: int) -> list[str]:
    """``count`` letters, one in 1,000 with a rarer reason (a filter that must search)."""
    from redis import Redis

    from asyncjobs.brokers.dead_letters import DeadLetter, Reason

    conn = Redis.from_url(redis_url)
    ids: list[str] = []
    with conn.pipeline(transaction=False) as pipe:
        for n in range(count):
            body = b'{"task_id":"b%d","task_name":"example.shop.tasks:send_welcome_email",' % n
            record = DeadLetter(
                body=body + b'"args":[%d],"kwargs":{},"labels":{}}' % n,
                queue=QUEUE,
                reason=Reason.UNKNOWN_TASK if n % 1000 == 0 else Reason.MAX_ATTEMPTS,
                error_type="SMTPServerDisconnected",
                error_message=f"Connection unexpectedly closed (attempt 3 of letter {n})",
                task_id=f"b{n}",
                task_name="example.shop.tasks:send_welcome_email",
                attempts=3,
                deliveries=3,
                history=tuple({"attempt": a, "error_type": "SMTPServerDisconnected",
                               "error_message": "closed", "at": time.time()} for a in (1, 2)),
            )  # fmt: skip
            pipe.xadd(f"{prefix}:{QUEUE}:dead", {"record": record.to_json()})
            if len(pipe) >= 5_000:
                ids += [entry.decode() for entry in pipe.execute()]
        ids += [entry.decode() for entry in pipe.execute()]
    conn.close()
    return ids


def timed(get: Callable[[], int], rounds: int) -> tuple[float, float]:
    get()  # warm: templates compiled, connections open
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        status = get()
        times.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise SystemExit(f"the page answered {status}")
    return statistics.median(times), max(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--letters", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"ajconsole-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="asyncjobs-console-bench-") as tmp:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="example.settings",
            EXAMPLE_DB_PATH=str(Path(tmp) / "bench.sqlite3"),
            ASYNCJOBS_BROKER_URL=redis_url,
            ASYNCJOBS_RESULT_BACKEND_URL=redis_url,
            ASYNCJOBS_KEY_PREFIX=prefix,
        )
        try:
            return run(redis_url, prefix, args.letters, args.rounds)
        finally:
            from redis import Redis

            conn = Redis.from_url(redis_url)
            keys = list(conn.scan_iter(match=f"{prefix}*"))
            if keys:
                conn.delete(*keys)
            conn.close()


def run(redis_url: str, prefix: str, letters: int, rounds: int) -> int:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the client's host, 'testserver', is allowed
    call_command("migrate", verbosity=0, interactive=False)
    began = time.perf_counter()
    ids = seed(redis_url, prefix, letters)
    print(f"console pages: {letters:,} dead letters written in {time.perf_counter() - began:.1f} s")
    client = Client()
    client.force_login(User.objects.create_superuser("bench"))  # no password: never logs in
    base = "/admin/asyncjobs/console/dead-letters/"
    middle, third = ids[len(ids) // 2], ids[len(ids) // 3]
    pages = {
        "dead letters, newest page": (base, {"queue": QUEUE}),
        "dead letters, a page in the middle": (base, {"queue": QUEUE, "before": middle}),
        "dead letters, filtered (1 in 1,000 match)": (base, {"queue": QUEUE, "reason": RARE}),
        "one dead letter's record": (f"{base}letter/", {"queue": QUEUE, "id": third}),
        "overview": ("/admin/asyncjobs/console/", {}),
    }  # fmt: skip
    print(f"{'page':45} {'median':>9} {'slowest':>9}  goal {GOAL_MS:.0f} ms")
    for name, (url, query) in pages.items():
        median, slowest = timed(lambda u=url, q=query: client.get(u, q).status_code, rounds)
        verdict = "met" if slowest <= GOAL_MS else "NOT met"
        print(f"{name:45} {median:7.1f} ms {slowest:7.1f} ms  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
