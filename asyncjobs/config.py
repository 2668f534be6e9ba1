"""``settings.ASYNCJOBS`` validated once into a frozen config.

Every key can be overridden by an environment variable ``ASYNCJOBS_<KEY>`` (12-factor,
Kubernetes Secrets). A wrong value raises ``ConfigurationError`` naming the key, where it
came from and what is allowed. Broker and store URLs are parsed as their library will
read them (``asyncjobs.brokers.transport.check_url``), and shown with their secrets redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.transport import TransportSpec, check_url, transport_for
from asyncjobs.brokers.urls import redact_url
from asyncjobs.retries import MAX_BACKOFF_S, Backoff

ENV_PREFIX = "ASYNCJOBS_"
HOOK_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*([.:][A-Za-z_]\w*)$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
URL_KEYS = frozenset(
    {"BROKER_URL", "RESULT_BACKEND_URL", "SCHEDULE_STORE_URL", "AMQP_MANAGEMENT_URL"}
)


def _seconds(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, timedelta) else value


class BackoffSettings(BaseModel):
    """``RETRY_BACKOFF``: ``{"BASE": 1, "FACTOR": 2, "MAX": 300, "JITTER": 1.0}`` (any
    subset; keys in either case; BASE and MAX in seconds or timedelta). The wait before
    attempt n + 1 is uniform in [(1 - JITTER) * c, c], c = min(MAX, BASE * FACTOR**(n-1))."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=str.upper, populate_by_name=True
    )

    base: float = Field(default=1.0, gt=0, le=86_400)
    factor: float = Field(default=2.0, ge=1, le=100)
    max: float = Field(default=300.0, gt=0, le=MAX_BACKOFF_S)
    jitter: float = Field(default=1.0, ge=0, le=1)

    @field_validator("base", "max", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds(value)

    @model_validator(mode="after")
    def _capped_above_base(self) -> BackoffSettings:
        if self.max < self.base:
            raise ValueError(f"MAX ({self.max} s) must be >= BASE ({self.base} s)")
        return self

    def backoff(self) -> Backoff:
        return Backoff(base_s=self.base, factor=self.factor, max_s=self.max, jitter=self.jitter)


class TracingSettings(BaseModel):
    """``TRACING`` as a dict (``True`` is the same with every default); any dict turns it on.

    ``SERVICE_NAME``: the prefix of each process's ``service.name``
    (``<SERVICE_NAME>-web``, ``-worker``, ``-scheduler``; default: the Django project's
    package); ``OTEL_SERVICE_NAME`` wins. ``LINK_TO_PRODUCER``: a task's ``process`` span
    starts a trace of its own with a link to the ``send`` span, instead of continuing
    the sender's trace as its child. ``INSTRUMENT_DJANGO``: request spans in web processes
    (``opentelemetry-instrumentation-django``)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=str.upper, populate_by_name=True
    )

    service_name: str | None = Field(default=None, min_length=1, max_length=200)
    link_to_producer: bool = False
    instrument_django: bool = True


# ``TRACING``: true/false, or a dict of TracingSettings (the tags keep errors readable).
_TRACING_TAGS = frozenset({"flag", "settings"})
TracingValue = Annotated[
    Annotated[bool, Tag("flag")] | Annotated[TracingSettings, Tag("settings")],
    Discriminator(lambda v: "settings" if isinstance(v, dict | TracingSettings) else "flag"),
]


class AsyncJobsConfig(BaseModel):
    """The validated settings. Field aliases are the ``ASYNCJOBS`` keys."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=str.upper, populate_by_name=True
    )

    broker_url: str = Field(repr=False)
    result_backend_url: str | None = Field(default=None, repr=False)
    queues: tuple[str, ...] = ("default",)
    default_queue: str = "default"
    worker_queues: tuple[str, ...] = ()
    worker_concurrency: int = Field(default=500, ge=1, le=100_000)
    max_attempts: int = Field(default=3, ge=1, le=1000)
    max_deliveries: int = Field(default=5, ge=1, le=1000)
    retry_backoff: BackoffSettings = BackoffSettings()
    lease_timeout_s: float = Field(default=15.0, gt=0, alias="LEASE_TIMEOUT")
    drain_timeout_s: float = Field(default=25.0, gt=0, alias="DRAIN_TIMEOUT")
    send_timeout_s: float = Field(default=10.0, gt=0, le=300, alias="SEND_TIMEOUT")
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    result_ttl_s: int = Field(default=86_400, ge=1, alias="RESULT_TTL")
    key_prefix: str = Field(default="asyncjobs", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")
    schedules: tuple[Any, ...] = ()  # Schedule objects, from dicts (see _schedules)
    schedule_store_url: str | None = Field(default=None, repr=False)
    tracing: TracingValue = False
    # Hooks (asyncjobs.hooks.Hooks subclasses) every process of the project runs with, by
    # import path ("shop.hooks.Audit" or "shop.hooks:Audit"); built when it is configured.
    hooks: tuple[str, ...] = ()
    # Worker probes and metrics (see README, "Health, metrics and inspection").
    health_port: int | None = Field(default=None, ge=1, le=65535)
    liveness_timeout_s: float = Field(default=10.0, gt=0, alias="LIVENESS_TIMEOUT")
    prometheus: bool = False
    # Queue inspection: RabbitMQ's management API (for in-flight counts) and the
    # thresholds above which the health view answers 503.
    amqp_management_url: str | None = Field(default=None, repr=False)
    health_max_backlog: int | None = Field(default=None, ge=0)
    health_max_wait_s: float | None = Field(default=None, gt=0, alias="HEALTH_MAX_WAIT")
    health_max_dead_letters: int | None = Field(default=None, ge=0)
    # Workers keep a registry of themselves and per-minute counts per queue in the
    # first configured store that can (asyncjobs.monitor); heartbeat period in seconds.
    monitor: bool = True
    monitor_heartbeat_s: float = Field(default=5.0, gt=0, le=60, alias="MONITOR_HEARTBEAT")

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules(cls, value: Any) -> Any:
        from asyncjobs.schedules.definitions import Schedule

        if isinstance(value, dict) or not isinstance(value, list | tuple):
            raise ValueError("a list of schedules: [{'TASK': 'app.tasks:fn', 'CRON': '0 * * * *'}]")
        try:
            return tuple(
                item if isinstance(item, Schedule) else Schedule.from_dict(item) for item in value
            )
        except (ConfigurationError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("schedule_store_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value and not check_url(value, "SCHEDULE_STORE_URL").capabilities.stores_schedules:
            raise ConfigurationError(
                "SCHEDULE_STORE_URL: schedules are kept in Redis (memory:// in tests); "
                f"got {redact_url(value)!r}"
            )
        return value or None

    @field_validator("amqp_management_url")
    @classmethod
    def _management_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {redact_url(value)!r}")
        return value or None

    @field_validator(
        "lease_timeout_s",
        "drain_timeout_s",
        "send_timeout_s",
        "liveness_timeout_s",
        "health_max_wait_s",
        "monitor_heartbeat_s",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        check_url(value, "BROKER_URL")
        return value

    @field_validator("result_backend_url")
    @classmethod
    def _result_url(cls, value: str | None) -> str | None:
        if value and not check_url(value, "RESULT_BACKEND_URL").capabilities.stores_results:
            raise ConfigurationError(
                "RESULT_BACKEND_URL: results are stored in Redis (memory:// in tests); "
                f"got {redact_url(value)!r}"
            )
        return value or None

    @field_validator("hooks")
    @classmethod
    def _hook_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not HOOK_PATH.match(path):
                raise ValueError(f"{path!r} is not an import path such as 'shop.hooks.Audit'")
        return value

    @field_validator("queues", "worker_queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not QUEUE_NAME.match(name):
                raise ValueError(f"queue name {name!r}: use letters, digits, '_', '.', '-'")
        if len(set(value)) != len(value):
            raise ValueError("queue names must be unique")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AsyncJobsConfig:
        if not self.queues:
            raise ValueError("QUEUES: at least one queue is needed")
        if self.default_queue not in self.queues:
            raise ValueError(f"DEFAULT_QUEUE {self.default_queue!r} is not one of QUEUES")
        unknown = set(self.worker_queues) - set(self.queues)
        if unknown:
            raise ValueError(f"WORKER_QUEUES {sorted(unknown)} are not in QUEUES")
        self._stores_are_shared()
        return self

    def _stores_are_shared(self) -> None:
        """A store that lives in one process (memory://) cannot serve a broker whose
        workers run in others: their results and claims would never be seen."""
        if not self.transport.capabilities.shared:
            return
        for key, url in (
            ("RESULT_BACKEND_URL", self.result_backend_url),
            ("SCHEDULE_STORE_URL", self.schedule_store_url),
        ):
            if url and not transport_for(url, key).capabilities.shared:
                raise ValueError(
                    f"{key} {redact_url(url)!r} is kept inside one process, but BROKER_URL's "
                    "workers run in others; use a redis:// URL"
                )

    # -- derived -----------------------------------------------------------------
    @property
    def transport(self) -> TransportSpec:
        """The transport ``BROKER_URL`` selects (``asyncjobs.brokers.transport``)."""
        return transport_for(self.broker_url)

    @property
    def tracing_settings(self) -> TracingSettings | None:
        """``TRACING`` as settings; None when tracing is off."""
        if isinstance(self.tracing, TracingSettings):
            return self.tracing
        return TracingSettings() if self.tracing else None

    @property
    def effective_result_backend_url(self) -> str | None:
        """Results go to RESULT_BACKEND_URL, else to the broker itself when its transport
        stores results (Redis; memory:// in-process)."""
        if self.result_backend_url:
            return self.result_backend_url
        return self.broker_url if self.transport.capabilities.stores_results else None

    @property
    def effective_schedule_store_url(self) -> str | None:
        """Schedules and their claims: SCHEDULE_STORE_URL, else the result backend's Redis."""
        return self.schedule_store_url or self.effective_result_backend_url

    @property
    def effective_monitor_url(self) -> str | None:
        """Where workers keep their registry and counters: the first of BROKER_URL,
        RESULT_BACKEND_URL, SCHEDULE_STORE_URL whose transport can (Redis; memory:// in
        tests). None: none can (RabbitMQ alone). Whether MONITOR is on is not asked."""
        for key, url in (
            ("BROKER_URL", self.broker_url),
            ("RESULT_BACKEND_URL", self.result_backend_url),
            ("SCHEDULE_STORE_URL", self.schedule_store_url),
        ):
            if url and transport_for(url, key).build_monitor_store is not None:
                return url
        return None

    def transport_options(self) -> TransportOptions:
        return TransportOptions(
            queues=self.queues,
            default_queue=self.default_queue,
            consume_queues=self.worker_queues,
            lease_timeout_s=self.lease_timeout_s,
            max_deliveries=self.max_deliveries,
            key_prefix=self.key_prefix,
            send_timeout_s=self.send_timeout_s,
            management_url=self.amqp_management_url,
        )

    def __repr__(self) -> str:
        return f"AsyncJobsConfig(broker_url={redact_url(self.broker_url)!r}, queues={self.queues})"

    __str__ = __repr__


FIELDS_BY_KEY = {
    (info.alias or name).upper(): name for name, info in AsyncJobsConfig.model_fields.items()
}
# pydantic reports errors by field name or alias: both map back to the settings key.
KEY_OF = {name: key for key, name in FIELDS_BY_KEY.items()} | {key: key for key in FIELDS_BY_KEY}
SEQUENCE_KEYS = frozenset({"QUEUES", "WORKER_QUEUES", "SCHEDULES", "HOOKS"})


def load_config(
    settings: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> AsyncJobsConfig:
    """Merge ``settings`` (the ASYNCJOBS dict) with ``ASYNCJOBS_*`` env vars and validate."""
    environ = os.environ if environ is None else environ
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigurationError("ASYNCJOBS must be a dict of settings, e.g. {'BROKER_URL': ...}")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in (settings or {}).items():
        merged[_known(str(key), "ASYNCJOBS[{key!r}]")] = value
        origin[str(key).upper()] = f"ASYNCJOBS[{key!r}]"
    for env_key, raw in environ.items():
        if not env_key.startswith(ENV_PREFIX) or env_key in IGNORED_ENV:
            continue
        key = _known(env_key[len(ENV_PREFIX) :], f"environment variable {env_key}")
        merged[key] = _parse_env(key, raw)
        origin[key] = f"environment variable {env_key}"
    if "BROKER_URL" not in merged:
        raise ConfigurationError(
            "BROKER_URL is required: set ASYNCJOBS = {'BROKER_URL': 'redis://127.0.0.1:6379/0'} "
            "or the environment variable ASYNCJOBS_BROKER_URL"
        )
    try:
        return AsyncJobsConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, merged, origin)) from None


# Variables that share the prefix but are not settings (tests, tooling: `make screenshots`
# sets ASYNCJOBS_SCREENSHOTS for pytest, whose site processes inherit it).
IGNORED_ENV = frozenset(
    {"ASYNCJOBS_TEST_REDIS_URL", "ASYNCJOBS_TEST_AMQP_URL", "ASYNCJOBS_SCREENSHOTS"}
)


def _known(key: str, where: str) -> str:
    upper = key.upper()
    if upper not in FIELDS_BY_KEY:
        known = ", ".join(sorted(FIELDS_BY_KEY))
        raise ConfigurationError(
            f"{where.format(key=key)}: unknown setting {key!r}; known: {known}"
        )
    return upper


def _parse_env(key: str, raw: str) -> Any:
    """Env values are strings: JSON where it parses (lists, dicts, numbers), else text."""
    text = raw.strip()
    if key in SEQUENCE_KEYS and text and not text.startswith("["):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if key == "TRACING" or text[:1] in "[{":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


def _describe(exc: ValidationError, merged: Mapping[str, Any], origin: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"][0] if error["loc"] else ""
        key = KEY_OF.get(str(loc), str(loc).upper())
        where = origin.get(key, "ASYNCJOBS")
        message = str(error.get("ctx", {}).get("error") or error["msg"])
        inner = [  # RETRY_BACKOFF.JITTER
            str(part).upper() for part in error["loc"][1:] if part not in _TRACING_TAGS
        ]
        if inner:
            message = f"{'.'.join(inner)}: {message}"
        message = message.removeprefix(f"{key}: ")  # our validators name the key too
        if key and key in merged:
            value = merged[key]
            shown = redact_url(value) if key in URL_KEYS and isinstance(value, str) else value
            got = "" if repr(shown) in message else f"; got {shown!r}"
            lines.append(f"{key} (from {where}): {message}{got}")
        else:
            lines.append(f"{key or 'ASYNCJOBS'}: {message}")
    return "invalid asyncjobs settings:\n  " + "\n  ".join(lines)
