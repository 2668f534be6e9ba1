"""Prometheus text exposition (format 0.0.4) of OpenTelemetry metrics, without
prometheus_client or opentelemetry-exporter-prometheus.

``PrometheusReader`` is a pull reader: nothing is collected until a scrape calls
``render(reader)``. ``metrics_setup(config)`` picks where a worker's metrics go:

- ``PROMETHEUS`` on: a ``MeterProvider`` of our own, read by a ``PrometheusReader`` and
  served at ``/metrics`` on ``HEALTH_PORT``. It is *not* installed as the global
  provider, so an application that set its own (say, for OTLP) keeps it for its own
  metrics; asyncjobs' metrics then go to Prometheus only.
- otherwise: the global provider, i.e. wherever the application exports (OTLP...), or
  nowhere (the API's no-op) when it configured nothing.

Naming follows OpenTelemetry's Prometheus compatibility rules: dots and other invalid
characters become ``_``, a unit ``s`` adds ``_seconds`` (``{...}`` annotations add
nothing), monotonic sums are counters named ``..._total``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker.metrics import DURATION_BUCKETS_S, HISTOGRAMS, MetricsHooks

logger = logging.getLogger("asyncjobs.worker")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNIT_SUFFIXES = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_REPEATED_UNDERSCORES = re.compile(r"__+")


class PrometheusReader(MetricReader):
    """Collects on demand (a scrape), cumulatively: what Prometheus expects."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()  # scrapes may overlap (one thread per request)
        self._collected: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._collected = metrics_data

    def read(self) -> MetricsData | None:
        """Collect now; None before the reader is attached to a MeterProvider."""
        with self._lock:
            self._collected = None
            self.collect()
            return self._collected

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush: whatever was not scraped is simply not read."""


def metrics_setup(config: AsyncJobsConfig) -> tuple[MetricsHooks, PrometheusReader | None]:
    """The worker's metrics observer, and the reader ``/metrics`` renders (PROMETHEUS)."""
    if not config.prometheus:
        return MetricsHooks(), None
    if config.health_port is None:
        logger.warning("PROMETHEUS is on but HEALTH_PORT is not set: nothing serves /metrics")
    reader = PrometheusReader()
    buckets = ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S)
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name=name, aggregation=buckets) for name in HISTOGRAMS],
    )
    return MetricsHooks(provider), reader


def render(reader: PrometheusReader) -> bytes:
    """Everything ``reader`` collects now, as Prometheus text exposition format 0.0.4."""
    data = reader.read()
    families: dict[str, _Family] = {}
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                _add(families, metric)
    lines: list[str] = []
    for name, family in families.items():
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {family.type}")
        lines.extend(family.samples)
    return ("\n".join(lines) + "\n").encode() if lines else b""


@dataclass
class _Family:
    type: str
    help: str
    samples: list[str] = field(default_factory=list)


def _add(families: dict[str, _Family], metric: Metric) -> None:
    data = metric.data
    base = metric_name(metric.name, metric.unit or "")
    help_text = metric.description or metric.name
    if isinstance(data, Sum) and data.is_monotonic:
        name = base if base.endswith("_total") else base + "_total"
        family = families.setdefault(name, _Family("counter", help_text))
        family.samples.extend(_number_samples(name, data.data_points))
    elif isinstance(data, Sum | Gauge):
        family = families.setdefault(base, _Family("gauge", help_text))
        family.samples.extend(_number_samples(base, data.data_points))
    elif isinstance(data, Histogram):
        family = families.setdefault(base, _Family("histogram", help_text))
        for point in data.data_points:
            family.samples.extend(_histogram_samples(base, point))
    else:  # exponential histograms: none of ours; Prometheus text cannot carry them
        logger.debug("metric %s (%s) is not rendered", metric.name, type(data).__name__)


def _number_samples(name: str, points: Sequence[NumberDataPoint]) -> Iterator[str]:
    for point in points:
        yield f"{name}{_labels(point.attributes)} {_value(point.value)}"


def _histogram_samples(name: str, point: HistogramDataPoint) -> Iterator[str]:
    labels = dict(point.attributes or {})
    cumulative = 0
    # bucket_counts has one more entry than explicit_bounds: the (last, +Inf) bucket.
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        cumulative += count
        yield f"{name}_bucket{_labels(labels, le=_value(float(bound)))} {cumulative}"
    yield f"{name}_bucket{_labels(labels, le='+Inf')} {point.count}"
    yield f"{name}_sum{_labels(labels)} {_value(point.sum)}"
    yield f"{name}_count{_labels(labels)} {point.count}"


def metric_name(name: str, unit: str) -> str:
    """``asyncjobs.task.duration`` with unit ``s`` -> ``asyncjobs_task_duration_seconds``."""
    sanitized = _sanitize(name, _INVALID_NAME)
    suffix = UNIT_SUFFIXES.get(unit)
    if suffix is None and unit and not unit.startswith("{") and unit != "1":
        suffix = _sanitize(unit, _INVALID_NAME)
    if suffix and not sanitized.endswith("_" + suffix):
        sanitized = f"{sanitized}_{suffix}"
    return sanitized


def _sanitize(text: str, invalid: re.Pattern[str]) -> str:
    cleaned = _REPEATED_UNDERSCORES.sub("_", invalid.sub("_", text))
    return "_" + cleaned if cleaned[:1].isdigit() else cleaned


def _labels(attributes: Mapping[str, Any] | None, **extra: str) -> str:
    pairs = {
        _sanitize(str(k), _INVALID_LABEL): _label_value(v) for k, v in (attributes or {}).items()
    }
    pairs.update(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs.items()) + "}"


def _label_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
