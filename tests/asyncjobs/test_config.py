from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from asyncjobs.brokers.urls import redact_url, scrub
from asyncjobs.config import load_config
from asyncjobs.errors import AsyncJobsError, ConfigurationError

PASSWORD = "s3cret-pw"


def test_minimal_redis_config_has_documented_defaults() -> None:
    config = load_config({"BROKER_URL": "redis://127.0.0.1:6379/0"}, environ={})
    assert config.transport.name == "redis"
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
        ("redis://h:6379/0", "redis"),
        ("rediss://h:6380/1", "redis"),
        ("amqp://guest:guest@h:5672/", "rabbitmq"),
        ("amqps://u:p@h/vhost", "rabbitmq"),
        ("memory://", "memory"),
    ],
)
def test_every_documented_scheme_is_accepted(url: str, transport: str) -> None:
    assert load_config({"BROKER_URL": url}, environ={}).transport.name == transport


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


def test_the_test_tools_variables_are_not_settings() -> None:
    """They share the prefix; a process started under `make test` or `make screenshots`
    inherits them and must still start."""
    config = load_config(
        {"BROKER_URL": "redis://a:6379/0"},
        environ={
            "ASYNCJOBS_TEST_REDIS_URL": "redis://t:6379/0",
            "ASYNCJOBS_TEST_AMQP_URL": "amqp://t/",
            "ASYNCJOBS_SCREENSHOTS": "docs/screenshots",
        },
    )
    assert config.broker_url == "redis://a:6379/0"


def test_durations_accept_timedelta() -> None:
    config = load_config(
        {"BROKER_URL": "redis://h/0", "LEASE_TIMEOUT": timedelta(seconds=12)}, environ={}
    )
    assert config.lease_timeout_s == 12.0


def test_config_is_frozen() -> None:
    config = load_config({"BROKER_URL": "redis://h/0"}, environ={})
    with pytest.raises(ValidationError, match="max_attempts\n  Instance is frozen"):
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
    for bad, reason in (
        (f"kafka://u:{PASSWORD}@h/", "unsupported scheme 'kafka'"),
        (f"redis://u:{PASSWORD}@h:port/0", "malformed URL"),
        (f"amqp://u:{PASSWORD}@/", "has no host"),
    ):
        with pytest.raises(ConfigurationError, match=rf"BROKER_URL .*{reason}") as info:
            load_config({"BROKER_URL": bad}, environ={})
        assert PASSWORD not in str(info.value), str(info.value)
    with pytest.raises(ConfigurationError, match=r"RESULT_BACKEND_URL .*stored in Redis") as info:
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


def test_redact_url_masks_credentials_in_the_query_string() -> None:
    # redis-py reads ?password= and ?username= as credentials: shown nowhere.
    assert (
        redact_url(f"redis://h:6379/0?username=me&PassWord={PASSWORD}&socket_timeout=5")
        == "redis://h:6379/0?username=***&PassWord=***&socket_timeout=5"
    )
    assert redact_url(f"rediss://u:{PASSWORD}@h/0?passwd={PASSWORD}") == (
        "rediss://u:***@h/0?passwd=***"
    )
    assert redact_url("memory://") == "memory://"
    assert redact_url("redis://h/0?password=") == "redis://h/0?password="  # nothing to hide


def test_scrub_removes_passwords_from_library_text() -> None:
    url = f"amqp://u:{PASSWORD}%21@h/?password={PASSWORD}-q%2B"
    text = f"failed: {url} with {PASSWORD}! and {PASSWORD}-q+ or {PASSWORD}%21"
    scrubbed = scrub(text, url, None)
    assert PASSWORD not in scrubbed, scrubbed
    assert scrubbed.startswith("failed: amqp://u:***@h/?password=***")


@pytest.mark.parametrize(
    ("key", "url", "reason"),
    [
        # redis-py reads a path it cannot parse as database 0, silently.
        ("BROKER_URL", "redis://h/x", "the database is a number"),
        ("BROKER_URL", "redis://h/0/1", "the database is a number"),
        ("BROKER_URL", "redis://h/-1", "the database is a number"),
        ("BROKER_URL", "redis://h:6379/0?socket_timeout=abc", "socket_timeout"),
        ("BROKER_URL", "redis://h:6379/0?socket_timeout=-1", "socket_timeout"),
        ("BROKER_URL", "redis://h:6379/0?max_connections=0", "max_connections"),
        ("BROKER_URL", "redis://h:6379/0?db=-2", "db"),
        ("BROKER_URL", "redis://h:6379/0?sockettimeout=5", "unknown option 'sockettimeout'"),
        ("BROKER_URL", "redis://h:6379/0?protocol=4", "protocol"),
        ("BROKER_URL", "rediss://h:6379/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("BROKER_URL", "redis://h:70000/0", "Port out of range"),
        ("BROKER_URL", "redis://h:0/0", "port 0"),
        ("RESULT_BACKEND_URL", "redis://h/results", "the database is a number"),
        ("SCHEDULE_STORE_URL", "redis://h:6379/0?health_check_interval=soon", "health_check"),
        # aiormq reads a heartbeat it cannot parse as 0 (no heartbeats), aio-pika an
        # unparseable reconnect_interval as 0 (reconnect at once, forever).
        ("BROKER_URL", "amqp://h/?heartbeat=abc", "heartbeat"),
        ("BROKER_URL", "amqp://h/?heartbeat=70000", "heartbeat"),
        ("BROKER_URL", "amqp://h/?reconnect_interval=soon", "reconnect_interval"),
        ("BROKER_URL", "amqp://h/?fail_fast=perhaps", "fail_fast"),
        ("BROKER_URL", "amqp://h/?heartbeats=30", "unknown option 'heartbeats'"),
        ("BROKER_URL", "amqps://h/?no_verify_ssl=yes", "no_verify_ssl"),
        ("BROKER_URL", "amqp://h:99999/", "Port out of range"),
        ("BROKER_URL", "amqp://h/50%", "vhost"),
    ],
)
def test_urls_their_library_would_misread_fail_at_start_up(key: str, url: str, reason: str) -> None:
    settings = {"BROKER_URL": "redis://h:6379/0", key: url}
    with_secret = url.replace("://h", f"://u:{PASSWORD}@h", 1)
    with_secret += ("&" if "?" in url else "?") + f"password={PASSWORD}"
    for given in (url, with_secret):
        with pytest.raises(ConfigurationError) as info:
            load_config(settings | {key: given}, environ={})
        message = str(info.value)
        assert key in message and reason in message, message
        assert PASSWORD not in message, message


@pytest.mark.parametrize(
    "url",
    [
        "redis://h",
        "redis://h/",
        "redis://h:6379/15",
        "rediss://u:p@h:6380/1?ssl_cert_reqs=none&socket_timeout=2.5&health_check_interval=0",
        f"redis://h:6379/0?db=3&password={PASSWORD}&username=me&client_name=web",
        "amqp://guest:guest@h:5672/",
        "amqp://h/vhost%2Fwith%2Fslash?heartbeat=30&reconnect_interval=0.5&fail_fast=no",
        "amqps://h/?name=web&auth=plain&no_verify_ssl=1&cafile=/etc/ca.pem",
    ],
)
def test_urls_as_their_library_reads_them_are_accepted(url: str) -> None:
    key = "RESULT_BACKEND_URL" if url.startswith("redis") else "BROKER_URL"
    load_config({"BROKER_URL": "redis://h:6379/0", key: url}, environ={})


def test_a_bad_setting_beside_urls_with_secrets_shows_none_of_them() -> None:
    secret = "S3CRET-QS"
    settings = {
        "BROKER_URL": f"redis://127.0.0.1:6379/0?password={secret}",
        "RESULT_BACKEND_URL": f"redis://127.0.0.1:6379/x?passwd={secret}",  # bad twice
        "SCHEDULE_STORE_URL": f"redis://:{secret}@127.0.0.1:6379/2?username={secret}",
        "MAX_ATTEMPTS": 0,
    }
    with pytest.raises(ConfigurationError) as info:
        load_config(settings, environ={})
    message = str(info.value)
    assert "MAX_ATTEMPTS" in message and "RESULT_BACKEND_URL" in message
    assert secret not in message
    config = load_config(settings | {"MAX_ATTEMPTS": 1, "RESULT_BACKEND_URL": None}, environ={})
    assert secret not in repr(config)
