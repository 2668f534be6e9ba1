"""The KEDA model and the backlog-formula check on their own: the designs we did not
choose fail it for the reason the overlays' comments give, and the helpers' edge cases.

(``test_scaler_metrics.py`` checks the model against real Redis and RabbitMQ.)
"""

from __future__ import annotations

import pytest

from asyncjobs.config import load_config
from tests.k8s import keda_model, manifests
from tests.k8s.backlog_formula import check_formula_counts_backlog
from tests.k8s.keda_model import FormulaError, QueueState, StreamState, TriggerError
from tests.k8s.manifests import Doc

SETTINGS = load_config(
    {"BROKER_URL": "redis://redis:6379/0", "QUEUES": ["default", "emails"]}, environ={}
)


def redis_spec(formula: str, triggers: dict[str, dict[str, str]]) -> Doc:
    return {
        "advanced": {"scalingModifiers": {"formula": formula, "activationTarget": "0"}},
        "triggers": [
            {"type": "redis-streams", "name": name, "metadata": metadata}
            for name, metadata in triggers.items()
        ],
    }


def stream(queue: str, **mode: str) -> dict[str, str]:
    return {"stream": f"asyncjobs:{queue}", **mode}


def test_our_redis_design_counts_the_backlog_in_every_state() -> None:
    spec = redis_spec(
        "d + e", {"d": stream("default", streamLength="5"), "e": stream("emails", streamLength="5")}
    )
    assert check_formula_counts_backlog(spec, SETTINGS) == []


def test_the_issues_lag_plus_pending_reads_zero_when_tasks_finish_out_of_order() -> None:
    group = {"consumerGroup": "asyncjobs"}
    spec = redis_spec(
        "d_lag + d_pending + e_lag + e_pending",
        {
            "d_lag": stream("default", lagCount="5", **group),
            "d_pending": stream("default", pendingEntriesCount="5", **group),
            "e_lag": stream("emails", lagCount="5", **group),
            "e_pending": stream("emails", pendingEntriesCount="5", **group),
        },
    )
    [problem] = check_formula_counts_backlog(spec, SETTINGS)
    assert "tasks finished out of order (Redis lag NULL)" in problem
    assert "the formula reads 0" in problem and "the backlog is 3" in problem


def test_a_pending_trigger_fails_when_the_group_is_gone() -> None:
    group = {"consumerGroup": "asyncjobs"}
    spec = redis_spec(
        "d + 0 * d_pending + e",
        {
            "d": stream("default", streamLength="5"),
            "d_pending": stream("default", pendingEntriesCount="5", **group),
            "e": stream("emails", streamLength="5"),
        },
    )
    [problem] = check_formula_counts_backlog(spec, SETTINGS)
    assert "consumer group gone" in problem and "NOGROUP" in problem
    assert "neither scales nor wakes" in problem


def test_pending_alone_misses_waiting_messages() -> None:
    group = {"consumerGroup": "asyncjobs"}
    spec = redis_spec(
        "d + e",
        {"d": stream("default", **group), "e": stream("emails", **group)},  # pending: the default
    )
    [problem] = check_formula_counts_backlog(spec, SETTINGS)
    assert "3 messages waiting: the formula reads 0" in problem


def test_rabbitmq_over_amqp_misses_running_tasks() -> None:
    spec: Doc = {
        "advanced": {"scalingModifiers": {"formula": "d + e", "activationTarget": "0"}},
        "triggers": [
            {
                "type": "rabbitmq",
                "name": n,
                "metadata": {
                    "queueName": f"asyncjobs.{q}",
                    "mode": "QueueLength",
                    "protocol": "amqp",
                },
            }
            for n, q in (("d", "default"), ("e", "emails"))
        ],
    }
    [problem] = check_formula_counts_backlog(spec, SETTINGS)
    assert "2 tasks running, 1 ready: the formula reads 1" in problem


def test_redis_modes_follow_keda_validate() -> None:
    state = StreamState(length=5, pending=2, lag=None)
    assert keda_model.redis_streams_metric({"stream": "s"}, state) == 5
    assert keda_model.redis_streams_metric({"stream": "s", "streamLength": "9"}, state) == 5
    group = {"stream": "s", "consumerGroup": "g"}
    assert keda_model.redis_streams_metric(group, state) == 2  # pending is the default
    assert keda_model.redis_streams_metric({**group, "lagCount": "0"}, state) == 2
    assert keda_model.redis_streams_metric({**group, "lagCount": "3"}, state) == keda_model.NULL_LAG
    no_group = StreamState(length=4, pending=0, lag=None, group_exists=False)
    assert keda_model.redis_streams_metric({**group, "lagCount": "3"}, no_group) == 4
    with pytest.raises(TriggerError, match="NOGROUP"):
        keda_model.redis_streams_metric(group, no_group)
    absent = StreamState(0, 0, None, group_exists=False, stream_exists=False)
    assert keda_model.redis_streams_metric({**group, "lagCount": "3"}, absent) == 0


def test_rabbitmq_counts() -> None:
    state = QueueState(ready=3, unacknowledged=2)
    assert keda_model.rabbitmq_metric({"protocol": "http", "mode": "QueueLength"}, state) == 5
    assert keda_model.rabbitmq_metric({"protocol": "amqp"}, state) == 3
    assert (
        keda_model.rabbitmq_metric({"protocol": "http", "excludeUnacknowledged": "true"}, state)
        == 3
    )
    with pytest.raises(TriggerError):
        keda_model.rabbitmq_metric({"mode": "MessageRate"}, state)


def test_formula_subset() -> None:
    assert keda_model.evaluate("a + b * 2 - -c / 4", {"a": 1, "b": 2, "c": 4}) == 6
    assert keda_model.formula_names("(a + b) / 2") == {"a", "b"}
    for bad in ("a > b ? a : b", "max(a, b)", "a ** 2", "a + 'x'", "a +"):
        with pytest.raises(FormulaError):
            keda_model.parse_formula(bad)
    with pytest.raises(FormulaError, match="not a trigger name"):
        keda_model.evaluate("a + z", {"a": 1})


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_tool_skips_locally_and_fails_under_ci(
    ci: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="kubectl on PATH"):
        manifests.kubectl()
    monkeypatch.setattr(manifests, "KEDA_DIR", manifests.KEDA_DIR / "nope")
    with pytest.raises(expected, match="KEDA schemas"):
        manifests.keda_dir()
