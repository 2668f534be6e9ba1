"""A dead-letter record can always be written: it is how a message leaves the queue."""

from __future__ import annotations

import orjson

from asyncjobs.brokers.dead_letters import DeadLetter, Reason


def test_a_record_with_an_unencodable_history_is_written_without_it() -> None:
    record = DeadLetter(
        body=b"\xff raw",
        queue="default",
        reason=Reason.MAX_ATTEMPTS,
        error_message="lone \ud800 surrogate",
        history=({"attempt": 10**30},),
    )
    written = orjson.loads(record.to_json())
    assert written["history"] == []
    assert "history dropped" in written["error_message"]
    assert written["error_message"].startswith("lone ? surrogate")
    back = DeadLetter.from_json(record.to_json(), "id-1")
    assert (back.body, back.reason, back.history) == (b"\xff raw", Reason.MAX_ATTEMPTS, ())


def test_a_normal_record_round_trips() -> None:
    record = DeadLetter(
        body=b"{}",
        queue="q",
        reason=Reason.BAD_DELIVERY_COUNT,
        history=({"attempt": 1, "error_type": "E", "error_message": "m", "at": 1.5},),
    )
    back = DeadLetter.from_json(record.to_json(), "x")
    assert back.history == record.history and back.reason is Reason.BAD_DELIVERY_COUNT


def test_the_record_keeps_the_final_errors_traceback() -> None:
    from asyncjobs.worker.outcomes import traceback_of

    def fail() -> None:
        raise ValueError("the reason")

    try:
        fail()
    except ValueError as exc:
        text = traceback_of(exc)
    assert text.startswith("Traceback") and 'raise ValueError("the reason")' in text
    assert traceback_of(ValueError("never raised")) == ""
    record = DeadLetter(body=b"{}", queue="q", reason=Reason.MAX_ATTEMPTS, traceback=text)
    assert DeadLetter.from_json(record.to_json(), "x").traceback == text


def test_a_record_with_fields_of_a_newer_writer_is_still_read() -> None:
    written = orjson.loads(DeadLetter(body=b"{}", queue="q", reason=Reason.REJECTED).to_json())
    written["from_the_future"] = 1
    assert DeadLetter.from_json(orjson.dumps(written), "x").queue == "q"
