"""The demo's trace view: how it decides to trace, and the printed tree."""

from __future__ import annotations

from dataclasses import replace

from example.traces import DemoTracing, ReceivedSpan, render_tree


def span(name: str, span_id: str, parent: str, start: int, **kw: object) -> ReceivedSpan:
    return ReceivedSpan(
        service=str(kw.get("service", "shop-web")),
        trace_id="t1",
        span_id=span_id,
        parent_id=parent,
        name=name,
        kind=str(kw.get("kind", "INTERNAL")),
        status=str(kw.get("status", "UNSET")),
        attributes=dict(kw.get("attributes", {})),  # type: ignore[call-overload]
        start_ns=start,
        end_ns=start + 2_000_000,
    )


def test_the_tree_shows_children_under_their_parents_in_start_order() -> None:
    spans = [
        span("process emails", "c", "b", 3, service="shop-worker", status="ERROR",
             attributes={"error.type": "ConnectionError"}),
        span("POST signup", "a", "", 1, kind="SERVER"),
        span("send default", "d", "a", 4, kind="PRODUCER"),
        span("send emails", "b", "a", 2, kind="PRODUCER"),
        replace(span("another trace", "x", "", 0), trace_id="t2"),
    ]  # fmt: skip

    lines = render_tree(spans, "t1")

    assert [line[: line.index("shop-")].rstrip() for line in lines] == [
        "POST signup",
        "├─ send emails",
        "│  └─ process emails",
        "└─ send default",
    ]
    assert "shop-worker" in lines[2]
    assert lines[2].endswith("2.0 ms  ERROR (ConnectionError)")


def test_the_demo_traces_to_its_own_receiver_unless_told_otherwise() -> None:
    assert DemoTracing({"ASYNCJOBS_TRACING": "0"}).env == {}
    told = DemoTracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert told.env == {"ASYNCJOBS_TRACING": "true"}
    assert told.receiver is None

    own = DemoTracing({})
    try:
        assert own.receiver is not None
        assert own.env["ASYNCJOBS_TRACING"] == "true"
        assert own.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == own.receiver.endpoint
        assert own.trace_of("no-such-task", wait_s=0) == []
    finally:
        own.close()
