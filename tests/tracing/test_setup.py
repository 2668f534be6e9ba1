"""Turning tracing on: the ``TRACING`` setting, service names, the ``OTEL_*`` variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from asyncjobs.config import TracingSettings, load_config
from asyncjobs.django import tracing as django_tracing
from asyncjobs.errors import ConfigurationError
from asyncjobs.tracing import build_tracer_provider, process_role
from asyncjobs.tracing.setup import exporters_from_env

REPO_ROOT = Path(__file__).resolve().parents[2]
OTEL_VARS = ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER")


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


# -- the setting ----------------------------------------------------------------------
def test_tracing_is_off_by_default_and_on_with_true_or_a_dict() -> None:
    base = {"BROKER_URL": "redis://h/0"}
    assert load_config(base, environ={}).tracing_settings is None
    assert load_config(base | {"TRACING": True}, environ={}).tracing_settings == TracingSettings()
    config = load_config(
        base | {"TRACING": {"SERVICE_NAME": "shop", "LINK_TO_PRODUCER": True}}, environ={}
    )
    assert config.tracing_settings == TracingSettings(service_name="shop", link_to_producer=True)
    from_env = load_config(
        base, environ={"ASYNCJOBS_TRACING": '{"service_name": "shop", "instrument_django": false}'}
    )
    assert from_env.tracing_settings == TracingSettings(
        service_name="shop", instrument_django=False
    )
    assert load_config(base, environ={"ASYNCJOBS_TRACING": "0"}).tracing_settings is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"SERVICE": "shop"}, "TRACING (from ASYNCJOBS['TRACING']): SERVICE: Extra inputs"),
        ({"LINK_TO_PRODUCER": "often"}, "TRACING (from ASYNCJOBS['TRACING']): LINK_TO_PRODUCER"),
        ({"SERVICE_NAME": ""}, "SERVICE_NAME: String should have at least 1 character"),
        ("maybe", "TRACING (from ASYNCJOBS['TRACING']): Input should be a valid boolean"),
    ],
)
def test_a_bad_tracing_setting_names_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config({"BROKER_URL": "redis://h/0", "TRACING": value}, environ={})
    assert message in str(raised.value)


# -- service names, sampler, exporters --------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/venv/bin/taskiq", "worker", "asyncjobs.django.worker:broker"], "worker"),
        # What taskiq's CLI leaves in sys.argv once it runs (it pops its own name).
        (["worker", "asyncjobs.django.worker:broker", "--workers", "1"], "worker"),
        (["scheduler", "asyncjobs.django.worker:scheduler"], "scheduler"),
        (["/venv/lib/taskiq/__main__.py", "worker", "x:broker", "--workers", "2"], "worker"),
        (["/venv/bin/taskiq", "scheduler", "asyncjobs.django.worker:scheduler"], "scheduler"),
        (["/venv/bin/uvicorn", "example.asgi:application"], "web"),
        (["/venv/lib/uvicorn/__main__.py", "worker"], "web"),
        (["manage.py", "runserver"], "web"),
        ([], "web"),
    ],
)
def test_the_process_role_comes_from_the_taskiq_command(argv: list[str], role: str) -> None:
    assert process_role(argv) == role


def test_the_service_is_named_after_project_and_role_unless_otel_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = build_tracer_provider("shop-worker")
    assert provider.resource.attributes["service.name"] == "shop-worker"

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=a")
    named = build_tracer_provider("shop-worker")
    assert named.resource.attributes["service.name"] == "from-attributes"
    assert named.resource.attributes["team"] == "a"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    assert build_tracer_provider("shop-worker").resource.attributes["service.name"] == "billing"


def test_the_sampler_comes_from_otel_traces_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = build_tracer_provider("shop-web")
    assert provider.sampler is ALWAYS_OFF
    assert not provider.get_tracer("t").start_span("x").is_recording()


def test_exporters_come_from_otel_traces_exporter() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    [otlp] = exporters_from_env({})  # default: otlp, over HTTP/protobuf
    assert isinstance(otlp, OTLPSpanExporter)
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "none"}) == []
    [console] = exporters_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, ConsoleSpanExporter)
    with pytest.raises(ConfigurationError, match="no span exporter named 'zipkin'"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp,zipkin"})


def test_the_otlp_exporter_reads_its_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    [otlp] = exporters_from_env({})
    assert otlp._endpoint == "http://collector:4318/v1/traces"  # type: ignore[attr-defined]


# -- one setting, whole processes ----------------------------------------------------------
CONFIGURE = """
import json, sys
from opentelemetry import trace
from asyncjobs import configure, load_config
{before}
app = configure(load_config({{"BROKER_URL": "memory://", "TRACING": {tracing}}}))
provider = trace.get_tracer_provider()
print(json.dumps({{
    "service": dict(getattr(provider, "resource", None).attributes)["service.name"],
    "hooks": [type(hook).__name__ for hook in app.hooks.hooks],
}}))
"""


def run_configure(tracing: str, before: str = "", **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ASYNCJOBS_"))}
    done = subprocess.run(
        [sys.executable, "-c", CONFIGURE.format(tracing=tracing, before=before)],
        cwd=REPO_ROOT,
        env=clean | {"OTEL_TRACES_EXPORTER": "none"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_one_setting_sets_up_a_provider_and_send_spans() -> None:
    assert run_configure("True") == {
        "service": "asyncjobs-web",
        "hooks": ["SendTracing"],
    }
    assert run_configure('{"SERVICE_NAME": "shop"}')["service"] == "shop-web"
    assert run_configure("True", OTEL_SERVICE_NAME="billing")["service"] == "billing"


def test_a_provider_the_application_set_is_kept() -> None:
    own = (
        "from opentelemetry.sdk.resources import Resource\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider(resource=Resource.create("
        "{'service.name': 'mine'})))"
    )
    assert run_configure("True", before=own) == {
        "service": "mine",
        "hooks": ["SendTracing"],
    }


# -- Django ---------------------------------------------------------------------------------
def test_request_spans_without_the_asgi_instrumentation_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without it, opentelemetry-instrumentation-django silently skips ASGI requests."""
    real = django_tracing.importlib.util.find_spec

    def without_asgi(name: str, *args: object) -> object:
        return None if name == "opentelemetry.instrumentation.asgi" else real(name)

    monkeypatch.setattr(django_tracing.importlib.util, "find_spec", without_asgi)
    with pytest.raises(ConfigurationError, match="opentelemetry-instrumentation-asgi"):
        django_tracing.instrument_django()


def test_the_project_name_is_the_settings_package() -> None:
    assert django_tracing.project_name() == "tests"  # DJANGO_SETTINGS_MODULE=tests.django_settings
