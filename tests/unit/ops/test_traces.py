"""Which span exporters the standard ``OTEL_*`` variables ask for (none means tracing is off),
and what a record's headers make of its trace."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.errors import SettingsError
from service.ops.traces import Tracing, exporter_names


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "sagebridge"}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp_proto_http"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ["otlp_proto_grpc"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp_proto_http", "console"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporters_asked_for(environ: dict[str, str], expected: list[str]) -> None:
    assert exporter_names(environ) == expected


def test_off_builds_nothing() -> None:
    tracing = Tracing.from_environment({})
    assert not tracing.enabled
    tracing.close()


def test_an_exporter_not_installed_is_one_clear_error() -> None:
    with pytest.raises(SettingsError, match="no span exporter 'zipkin'"):
        Tracing.from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_a_record_s_headers_continue_its_trace_and_hostile_ones_start_a_new_one() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    try:
        good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        cases = {
            "good": [("TraceParent", good.encode()), ("other", b"\xff" * 100_000)],
            "not utf-8": [("traceparent", b"\xff\xfe-not-a-trace")],
            "malformed": [("traceparent", b"00-zz-yy-01")],
            "no value": [("traceparent", None)],
        }
        for name, headers in cases.items():
            tracing.consumed("events", 0, 1, headers).taken_in(name, None)
        spans = {
            s.attributes["messaging.message.id"]: s
            for s in exporter.get_finished_spans()
            if s.attributes is not None
        }
        assert spans["good"].parent is not None
        assert spans["good"].parent.span_id == 0x00F067AA0BA902B7
        for name in ("not utf-8", "malformed", "no value"):
            assert spans[name].parent is None, name
    finally:
        tracing.close()
