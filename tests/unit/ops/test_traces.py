"""Which span exporters the standard ``OTEL_*`` variables ask for: none means tracing is off."""

from __future__ import annotations

import pytest

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
