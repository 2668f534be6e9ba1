"""The ``memory://`` result store and schedule storage: the Redis ones' semantics, in the
process, shared per URL and key prefix."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from taskiq.result import TaskiqResult

from asyncjobs.brokers.errors import AsyncJobsError
from asyncjobs.brokers.memory.results import MAX_ATTEMPT_RECORDS, MemoryResultStore
from asyncjobs.brokers.memory.schedules import MemoryScheduleStorage
from asyncjobs.brokers.memory.server import Expiring, discard_server
from asyncjobs.brokers.stores import ResultStoreOptions
from asyncjobs.brokers.transport import transport_for
from asyncjobs.schedules.claims import ClaimStore
from asyncjobs.schedules.definitions import every
from asyncjobs.schedules.store import ScheduleStore
from tests.support.helpers import wait_until

URL = "memory://stores"


@pytest.fixture
def results(prefix: str) -> Iterator[MemoryResultStore]:
    spec = transport_for(URL)
    assert spec.build_result_store is not None
    store = spec.build_result_store(URL, ResultStoreOptions(ttl_s=60, key_prefix=prefix))
    assert isinstance(store, MemoryResultStore)
    yield store
    discard_server(URL, prefix)


@pytest.fixture
def storage(prefix: str) -> Iterator[MemoryScheduleStorage]:
    spec = transport_for(URL)
    assert spec.build_schedule_storage is not None
    made = spec.build_schedule_storage(URL, prefix)
    assert isinstance(made, MemoryScheduleStorage)
    yield made
    discard_server(URL, prefix)


def ok(value: object, log: str | None = None) -> TaskiqResult[object]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.1, log=log)


async def test_a_result_is_kept_as_json_and_read_back_as_a_copy(
    results: MemoryResultStore, prefix: str
) -> None:
    value = {"items": [1, 2], "huge": 2**70}  # beyond 64 bits: orjson refuses, json does not
    await results.set_result("t1", ok(value, log="said"))
    value["items"].append(3)  # type: ignore[attr-defined]
    got = await results.get_result("t1")
    assert got.return_value == {"items": [1, 2], "huge": 2**70} and got.log is None
    got.return_value["items"].append(4)
    assert (await results.get_result("t1", with_logs=True)).return_value["items"] == [1, 2]
    assert (await results.get_result("t1", with_logs=True)).log == "said"
    other = MemoryResultStore(URL, ResultStoreOptions(key_prefix=prefix))  # same URL, prefix
    assert await other.is_result_ready("t1")
    elsewhere = MemoryResultStore(URL, ResultStoreOptions(key_prefix=prefix + "x"))
    assert not await elsewhere.is_result_ready("t1")


async def test_a_missing_result_raises_our_error(results: MemoryResultStore) -> None:
    assert not await results.is_result_ready("nope")
    with pytest.raises(AsyncJobsError, match="no result for task nope"):
        await results.get_result("nope")


async def test_results_and_attempts_expire_after_their_ttl(prefix: str) -> None:
    store = MemoryResultStore(URL, ResultStoreOptions(ttl_s=1, key_prefix=prefix))
    try:
        await store.set_result("t", ok(1))
        await store.record_attempt("t", {"attempt": 1})
        assert await store.is_result_ready("t") and await store.attempts("t")

        async def gone() -> bool:
            return not await store.is_result_ready("t") and not await store.attempts("t")

        began = time.monotonic()
        await wait_until(gone, timeout=3.0, what="the result to expire")
        assert time.monotonic() - began >= 0.8
    finally:
        discard_server(URL, prefix)


async def test_attempts_are_listed_oldest_first_and_bounded(results: MemoryResultStore) -> None:
    for n in range(1, MAX_ATTEMPT_RECORDS + 3):
        await results.record_attempt("t", {"attempt": n, "error_type": "E"})
    kept = await results.attempts("t")
    assert [entry["attempt"] for entry in kept] == list(range(3, MAX_ATTEMPT_RECORDS + 3))
    assert await results.attempts("other") == []


async def test_a_tick_is_claimed_once_and_taken_over_only_while_pending(
    storage: MemoryScheduleStorage,
) -> None:
    assert await storage.claim("s", 1000, "a", ttl_ms=60_000, takeover_ms=60_000)
    assert not await storage.claim("s", 1000, "b", ttl_ms=60_000, takeover_ms=60_000)
    assert not await storage.claim("s", 1000, "a", ttl_ms=60_000, takeover_ms=60_000)
    assert await storage.claim("s", 2000, "b", ttl_ms=60_000, takeover_ms=60_000)  # another tick

    async def taken_over() -> bool:  # "a" died before sending: stale after 50 ms
        return await storage.claim("s", 1000, "b", ttl_ms=60_000, takeover_ms=50)

    await wait_until(taken_over, what="the takeover")
    await storage.mark_sent("s", 1000, "a", last_ttl_s=60)  # not a's any more: stays pending
    await wait_until(
        lambda: storage.claim("s", 1000, "c", ttl_ms=60_000, takeover_ms=50), what="again"
    )
    await storage.mark_sent("s", 1000, "c", last_ttl_s=60)
    # Final: not taken over however stale (takeover_ms -1: any pending claim would be).
    assert not await storage.claim("s", 1000, "d", ttl_ms=60_000, takeover_ms=-1)


async def test_a_release_frees_only_the_owners_pending_claim(
    storage: MemoryScheduleStorage,
) -> None:
    assert await storage.claim("s", 1000, "a", ttl_ms=60_000, takeover_ms=60_000)
    await storage.release("s", 1000, "b")  # not b's
    assert not await storage.claim("s", 1000, "b", ttl_ms=60_000, takeover_ms=60_000)
    await storage.release("s", 1000, "a")
    assert await storage.claim("s", 1000, "b", ttl_ms=60_000, takeover_ms=60_000)
    await storage.mark_sent("s", 1000, "b", last_ttl_s=60)
    await storage.release("s", 1000, "b")  # sent: final, not released
    assert not await storage.claim("s", 1000, "c", ttl_ms=60_000, takeover_ms=-1)


async def test_claims_expire_after_their_ttl(storage: MemoryScheduleStorage) -> None:
    assert await storage.claim("s", 1000, "a", ttl_ms=100, takeover_ms=60_000)
    await storage.mark_sent("s", 1000, "a", last_ttl_s=60)
    await wait_until(
        lambda: storage.claim("s", 1000, "b", ttl_ms=100, takeover_ms=60_000),
        timeout=2.0,
        what="the claim to expire",
    )


async def test_the_newest_tick_sent_is_kept(storage: MemoryScheduleStorage) -> None:
    assert await storage.last_sent_ms("s") is None
    claims = ClaimStore(storage, "me")
    for tick_ms in (2000, 1000):
        await storage.claim("s", tick_ms, "me", ttl_ms=60_000, takeover_ms=60_000)
        await storage.mark_sent("s", tick_ms, "me", last_ttl_s=60)
    assert await storage.last_sent_ms("s") == 2000
    last = await claims.last_sent("s")
    assert last is not None and last.timestamp() == 2.0


async def test_schedule_stores_of_one_url_and_prefix_share_their_schedules(prefix: str) -> None:
    first, second = ScheduleStore.from_url(URL, prefix), ScheduleStore.from_url(URL, prefix)
    elsewhere = ScheduleStore.from_url("memory://", prefix)
    try:
        ping = every(30).for_task("m:ping")
        await first.add(ping)
        assert [s.id for s in await second.list()] == [ping.id]
        assert await elsewhere.list() == []
        assert await second.remove(ping.id)
        assert await first.list() == []
        assert "memory://stores" in first.storage.location
    finally:
        discard_server(URL, prefix)
        discard_server("memory://", prefix)


def test_expired_entries_never_read_again_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Expiring, "SWEEP_FROM", 4)
    kept: Expiring[str, int] = Expiring()
    kept.set("stays", 0, None)
    for key in ("a", "b"):
        kept.set(key, 1, 1e-9)  # expired at once, and never read
    kept.set("c", 1, 60)  # the fourth: sweeps
    assert len(kept) == 2 and kept.get("stays") == 0 and kept.get("c") == 1


async def test_a_status_document_if_absent_never_overwrites(results: MemoryResultStore) -> None:
    assert await results.get_status("t1") is None
    await results.set_status("t1", b"RUNNING")
    await results.set_status("t1", b"READY", if_absent=True)
    assert await results.get_status("t1") == b"RUNNING"
    await results.set_status("t1", b"FAILED")
    assert await results.get_status("t1") == b"FAILED"
