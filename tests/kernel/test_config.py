from __future__ import annotations

from datetime import timedelta

import pytest

from asyncjobs.config import load_config
from asyncjobs.errors import AsyncJobsError, ConfigurationError
from brokers.urls import Transport, redact_url

PASSWORD = "s3cret-pw"


def test_minimal_redis_config_has_documented_defaults() -> None:
    config = load_config({"BROKER_URL": "redis://127.0.0.1:6379/0"}, environ={})
    assert config.transport is Transport.REDIS
    assert config.queues == ("default",)
    assert config.default_queue == "default"
    assert config.max_attempts == 3
    assert config.max_deliveries == 5
    assert config.drain_timeout_s == 25.0
    assert config.max_payload_bytes == 256 * 1024
    # Redis brokers keep results in the same Redis unless told otherwise.
    assert config.effective_result_backend_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://h:6379/0", Transport.REDIS),
        ("rediss://h:6380/1", Transport.REDIS),
        ("amqp://guest:guest@h:5672/", Transport.RABBITMQ),
        ("amqps://u:p@h/vhost", Transport.RABBITMQ),
        ("memory://", Transport.MEMORY),
    ],
)
def test_every_documented_scheme_is_accepted(url: str, transport: Transport) -> None:
    assert load_config({"BROKER_URL": url}, environ={}).transport is transport


def test_amqp_has_no_result_backend_unless_configured() -> None:
    config = load_config({"BROKER_URL": "amqp://guest:guest@h:5672/"}, environ={})
    assert config.effective_result_backend_url is None
    config = load_config(
        {"BROKER_URL": "amqp://h/", "RESULT_BACKEND_URL": "redis://h:6379/2"}, environ={}
    )
    assert config.effective_result_backend_url == "redis://h:6379/2"


def test_environment_overrides_settings_with_typed_values() -> None:
    config = load_config(
        {"BROKER_URL": "redis://a:6379/0", "QUEUES": ["default"]},
        environ={
            "ASYNCJOBS_BROKER_URL": "redis://b:6379/0",
            "ASYNCJOBS_QUEUES": "default, emails",
            "ASYNCJOBS_DRAIN_TIMEOUT": "10",
            "ASYNCJOBS_MAX_ATTEMPTS": "7",
            "ASYNCJOBS_TRACING": "true",
        },
    )
    assert config.broker_url == "redis://b:6379/0"
    assert config.queues == ("default", "emails")
    assert config.drain_timeout_s == 10.0
    assert config.max_attempts == 7
    assert config.tracing is True


def test_durations_accept_timedelta() -> None:
    config = load_config(
        {"BROKER_URL": "redis://h/0", "LEASE_TIMEOUT": timedelta(seconds=12)}, environ={}
    )
    assert config.lease_timeout_s == 12.0


def test_config_is_frozen() -> None:
    config = load_config({"BROKER_URL": "redis://h/0"}, environ={})
    with pytest.raises(Exception):  # noqa: B017,PT011 - pydantic's frozen-instance error
        config.max_attempts = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("settings", "environ", "names"),
    [
        ({"BROKER_URL": "kafka://h:9092"}, {}, ["BROKER_URL", "unsupported scheme", "redis://"]),
        ({"BROKER_URL": "redis://h:notaport/0"}, {}, ["BROKER_URL", "malformed"]),
        ({"BROKER_URL": "not a url"}, {}, ["BROKER_URL", "expected a URL"]),
        (
            {"BROKER_URL": "redis://h/0", "DRAIN_TIMEOUT": -1},
            {},
            ["DRAIN_TIMEOUT", "greater than 0"],
        ),
        (
            {"BROKER_URL": "redis://h/0"},
            {"ASYNCJOBS_LEASE_TIMEOUT": "-5"},
            ["LEASE_TIMEOUT", "ASYNCJOBS_LEASE_TIMEOUT"],
        ),
        ({"BROKER_URL": "redis://h/0", "MAX_ATTEMPTS": 0}, {}, ["MAX_ATTEMPTS"]),
        ({"BROKER_URL": "redis://h/0", "DEFAULT_QUEUE": "x"}, {}, ["DEFAULT_QUEUE", "QUEUES"]),
        ({"BROKER_URL": "redis://h/0", "QUEUES": ["ok", "bad name"]}, {}, ["QUEUES", "bad name"]),
        ({"BROKER_URL": "redis://h/0", "BROKR_URL": "x"}, {}, ["BROKR_URL", "unknown setting"]),
        ({}, {"ASYNCJOBS_QUEUES": "a"}, ["BROKER_URL is required"]),
        (
            {"BROKER_URL": "amqp://h/", "RESULT_BACKEND_URL": "amqp://h/"},
            {},
            ["RESULT_BACKEND_URL", "Redis"],
        ),
    ],
)
def test_bad_settings_fail_with_the_key_named(
    settings: dict[str, object], environ: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(settings, environ=environ)
    assert isinstance(info.value, AsyncJobsError)
    for name in names:
        assert name in str(info.value)


def test_passwords_never_appear_in_errors_or_reprs() -> None:
    url = f"redis://user:{PASSWORD}@h:6379/0"
    config = load_config({"BROKER_URL": url}, environ={})
    assert PASSWORD not in repr(config) and PASSWORD not in str(config)
    for bad in (
        f"kafka://u:{PASSWORD}@h/",
        f"redis://u:{PASSWORD}@h:port/0",
        f"amqp://u:{PASSWORD}@/",
    ):
        with pytest.raises(ConfigurationError) as info:
            load_config({"BROKER_URL": bad}, environ={})
        assert PASSWORD not in str(info.value), str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_config(
            {"BROKER_URL": url, "RESULT_BACKEND_URL": f"amqp://u:{PASSWORD}@h/"}, environ={}
        )
    assert PASSWORD not in str(info.value)


def test_redact_url() -> None:
    assert redact_url(f"amqp://guest:{PASSWORD}@h:5672/v") == "amqp://guest:***@h:5672/v"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    assert redact_url(f"redis://:{PASSWORD}@h/0") == "redis://:***@h/0"


def test_send_timeout_is_seconds_or_a_timedelta_up_to_five_minutes() -> None:
    def send_timeout(settings: dict[str, object], environ: dict[str, str]) -> float:
        config = load_config({"BROKER_URL": "redis://h/0", **settings}, environ=environ)
        assert config.transport_options().send_timeout_s == config.send_timeout_s
        return config.send_timeout_s

    assert send_timeout({}, {}) == 10.0
    assert send_timeout({"SEND_TIMEOUT": timedelta(seconds=3)}, {}) == 3.0
    assert send_timeout({}, {"ASYNCJOBS_SEND_TIMEOUT": "2.5"}) == 2.5
    assert send_timeout({"SEND_TIMEOUT": 300}, {}) == 300.0
    for bad, why in ((0, "greater than 0"), (301, "less than or equal to 300")):
        with pytest.raises(ConfigurationError, match=f"SEND_TIMEOUT.*{why}"):
            load_config({"BROKER_URL": "redis://h/0", "SEND_TIMEOUT": bad}, environ={})
