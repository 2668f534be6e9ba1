"""The console's dead-letter pages through Django's client on real Redis: pages, filters,
a letter's record, replay and purge behind confirmations, refusals, the audit log."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from redis import Redis

from asyncjobs.app import App
from tests.console.conftest import seed_dead_letters

pytestmark = pytest.mark.redis

LIST = "/admin/asyncjobs/console/dead-letters/"
LETTER = "/admin/asyncjobs/console/dead-letters/letter/"
REPLAY = "/admin/asyncjobs/console/dead-letters/replay/"
PURGE = "/admin/asyncjobs/console/dead-letters/purge/"


def stream_len(redis_url: str, key: str) -> int:
    conn = Redis.from_url(redis_url)
    try:
        return int(conn.xlen(key))
    finally:
        conn.close()


def test_pages_go_from_the_newest_to_the_oldest(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    ids = seed_dead_letters(redis_url, prefix, 120)
    first = admin_client.get(LIST, {"queue": "default"})
    assert first.status_code == 200
    shown = first.context["page"].letters
    assert [letter.id for letter in shown] == ids[::-1][:50]
    assert first.context["count"] == 120
    third = admin_client.get(LIST, {"queue": "default", "before": ids[20]})
    assert [letter.id for letter in third.context["page"].letters] == ids[:20][::-1]
    assert third.context["next_query"] is None


def test_a_filter_keeps_the_matching_letters(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    ids = seed_dead_letters(redis_url, prefix, 40, every_other_reason=True)
    page = admin_client.get(LIST, {"queue": "default", "reason": "unknown_task"}).context["page"]
    assert [letter.id for letter in page.letters] == ids[1::2][::-1]
    assert {letter.reason.value for letter in page.letters} == {"unknown_task"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"queue": "nowhere"}, "is not in QUEUES"),
        ({"queue": "default", "reason": "bored"}, "is not one of"),
        ({"queue": "default", "before": "not-an-id"}, "no dead letter id"),
    ],
)
def test_a_bad_filter_is_refused_with_the_reason(
    app: App, admin_client: Client, query: dict[str, str], reason: str
) -> None:
    response = admin_client.get(LIST, query)
    assert response.status_code == 400
    assert reason in response.context["reason"]


def test_a_letter_shows_its_record_and_the_body_needs_its_permission(
    app: App, admin_client: Client, viewer_client: Client, redis_url: str, prefix: str
) -> None:
    [letter_id] = seed_dead_letters(redis_url, prefix, 1)
    page = admin_client.get(LETTER, {"queue": "default", "id": letter_id})
    assert page.status_code == 200
    assert '"task_id": "t0"' in page.context["body"] and b"ValueError: bad 0" in page.content
    assert b"&quot;task_id&quot;: &quot;t0&quot;" in page.content  # escaped, never raw HTML
    hidden = viewer_client.get(LETTER, {"queue": "default", "id": letter_id})
    assert hidden.status_code == 200 and b'id="body-hidden"' in hidden.content
    assert hidden.context["body"] is None and b"&quot;task_id&quot;" not in hidden.content
    missing = admin_client.get(LETTER, {"queue": "default", "id": "1-0"})
    assert missing.status_code == 404


def test_replay_asks_first_then_sends_once_and_logs_it(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    ids = seed_dead_letters(redis_url, prefix, 3)
    asked = admin_client.post(REPLAY, {"queue": "default", "ids": ids[:2]})
    assert asked.status_code == 200 and asked.context["action"] == "replay"
    assert stream_len(redis_url, f"{prefix}:default") == 0  # nothing sent yet
    done = admin_client.post(REPLAY, {"queue": "default", "ids": ids[:2], "confirm": "yes"})
    assert done.status_code == 200, done.content
    assert stream_len(redis_url, f"{prefix}:default") == 2
    assert stream_len(redis_url, f"{prefix}:default:dead") == 1
    entry = LogEntry.objects.latest("action_time")
    assert entry.user.username == "root" and ids[0] in entry.change_message
    again = admin_client.post(REPLAY, {"queue": "default", "ids": ids[:2], "confirm": "yes"})
    assert again.status_code == 404  # another operator's replay: said so, nothing sent
    assert b"another operator replayed or purged" in again.content
    assert stream_len(redis_url, f"{prefix}:default") == 2


def test_a_tampered_replay_sends_nothing(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    ids = seed_dead_letters(redis_url, prefix, 1)
    other_queue = admin_client.post(REPLAY, {"queue": "other", "ids": ids, "confirm": "yes"})
    assert other_queue.status_code == 404
    unknown_queue = admin_client.post(REPLAY, {"queue": "nope", "ids": ids, "confirm": "yes"})
    assert unknown_queue.status_code == 400
    no_ids = admin_client.post(REPLAY, {"queue": "default", "confirm": "yes"})
    assert no_ids.status_code == 400
    assert admin_client.get(REPLAY, {"queue": "default", "ids": ids}).status_code == 405
    assert stream_len(redis_url, f"{prefix}:default") == 0
    assert stream_len(redis_url, f"{prefix}:other") == 0
    assert stream_len(redis_url, f"{prefix}:default:dead") == 1


def test_replay_all_matching_and_purge(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    seed_dead_letters(redis_url, prefix, 10, every_other_reason=True)
    form = {"queue": "default", "all": "1", "reason": "unknown_task"}
    assert admin_client.post(REPLAY, form).context["action"] == "replay_all"
    done = admin_client.post(REPLAY, {**form, "confirm": "yes"})
    assert b"Replayed 5 dead letters" in done.content
    assert stream_len(redis_url, f"{prefix}:default") == 5
    asked = admin_client.post(PURGE, {"queue": "default"})
    assert asked.context["count"] == 5
    assert stream_len(redis_url, f"{prefix}:default:dead") == 5
    purged = admin_client.post(PURGE, {"queue": "default", "confirm": "yes"})
    assert b"Purged 5 dead letters" in purged.content
    assert stream_len(redis_url, f"{prefix}:default:dead") == 0
    assert "purged 5" in LogEntry.objects.latest("action_time").change_message


def test_without_the_replay_permission_no_button_and_a_refused_post(
    app: App, viewer_client: Client, redis_url: str, prefix: str
) -> None:
    ids = seed_dead_letters(redis_url, prefix, 1)
    page = viewer_client.get(LIST, {"queue": "default"})
    assert page.status_code == 200
    assert b"replay-selected" not in page.content and b'id="purge"' not in page.content
    refused = viewer_client.post(REPLAY, {"queue": "default", "ids": ids, "confirm": "yes"})
    assert refused.status_code == 403
    assert viewer_client.post(PURGE, {"queue": "default", "confirm": "yes"}).status_code == 403
    assert stream_len(redis_url, f"{prefix}:default:dead") == 1
