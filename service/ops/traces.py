"""Traces: a W3C ``traceparent`` on an input record, continued to the Cloud Connector call and
onto the reply (SPEC, "Observability additions").

OpenTelemetry, configured by its own standard variables and nothing of ours: tracing is on when
``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``, or any installed one) or an
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` is set, and ``OTEL_SDK_DISABLED`` is not ``true``. The
SDK reads the rest itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the endpoint,
headers, sampler, batch processor limits, ``OTEL_PROPAGATORS``). When tracing is off nothing is
built: no provider, no instrumentation, and the bridge's one check per record finds
:attr:`Tracing.enabled` false, so every ticket carries ``None`` for its trace.

One event's trace:

* ``process <topic>`` (consumer span), the child of the record's ``traceparent`` (a new trace
  when it has none), covering intake;
* the Connector call: the serial lane calls inside that span's context, so the HTTP client's
  own instrumentation (aiohttp's or httpx's, whichever the client uses) makes its call span a
  child of it. The batch lane sends many records in one call, which belongs to no one record's
  trace: its ``send <endpoint>`` span starts a trace of its own, linked to each record's
  ``process`` span (a batch of one is simply that record's child);
* ``publish <topic>`` (producer span), the child of ``process``, from hand-over to the broker's
  acknowledgement; its context is the reply's (and the dead letter's) ``traceparent``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib.metadata import entry_points
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider

from service.errors import SettingsError

INSTRUMENTATION_NAME = "sagebridge"
DEFAULT_SERVICE_NAME = "sagebridge"
HTTP_INSTRUMENTORS = ("aiohttp-client", "httpx")
"""OpenTelemetry's own instrumentation of the client libraries the Connector client may use."""
_OTLP_OVER = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


class _Instrumentor(Protocol):
    def instrument(self, **kwargs: Any) -> None: ...

    def uninstrument(self, **kwargs: Any) -> None: ...


class RecordTrace:
    """One consumed record's place in its trace: the context of its ``process`` span."""

    __slots__ = ("_tracer", "context")

    def __init__(self, tracer: Tracer, context: otel_context.Context) -> None:
        self._tracer = tracer
        self.context = context

    @property
    def span(self) -> Span:
        return trace.get_current_span(self.context)

    def current(self) -> AbstractContextManager[None]:
        """Make this record's span the current one (for the HTTP client's instrumentation)."""
        return _attached(self.context)

    def taken_in(self, event_id: str | None, event_type: str | None) -> None:
        """Intake has decided on the record: its ``process`` span ends."""
        span = self.span
        if event_id:
            span.set_attribute("messaging.message.id", event_id)
        if event_type:
            span.set_attribute("sagebridge.event.type", event_type)
        span.end()

    def publishing(self, topic: str) -> Publishing:
        """Start the span of this record's reply; its context goes on the reply as headers."""
        span = self._tracer.start_span(
            f"publish {topic}",
            self.context,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span, self.context))
        return Publishing(span, [(name, value.encode()) for name, value in carrier.items()])


class Publishing:
    """A reply's span while it is being published, and the headers that carry it."""

    __slots__ = ("headers", "span")

    def __init__(self, span: Span, headers: list[tuple[str, bytes]]) -> None:
        self.span = span
        self.headers = headers

    def end(self) -> None:
        self.span.end()


class Tracing:
    """The service's tracer, or nothing at all (see the module docstring)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        """``provider`` ``None`` means off. Given a provider, the HTTP client libraries
        (aiohttp and httpx) are instrumented with it until :meth:`close`."""
        self.enabled = provider is not None
        self._provider = provider
        self._tracer: Tracer = trace.NoOpTracer()
        self._instrumentors: list[_Instrumentor] = []
        self._fields = frozenset(propagate.get_global_textmap().fields)
        """The headers the configured propagators read (``traceparent``, ``tracestate``,
        ``baggage`` by default): the only ones decoded, however many a record has."""
        if provider is None:
            return
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        for instrumentor in _http_instrumentors():
            instrumentor.instrument(tracer_provider=provider)
            self._instrumentors.append(instrumentor)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Tracing:
        """Tracing as the standard ``OTEL_*`` variables set it up; off when none asks for it."""
        exporters = exporter_names(environ)
        if not exporters:
            return cls(None)
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": DEFAULT_SERVICE_NAME})
        provider = SdkTracerProvider(resource=resource.merge(OTELResourceDetector().detect()))
        for name in exporters:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        return cls(provider)

    def consumed(
        self, topic: str, partition: int, offset: int, headers: Sequence[tuple[str, bytes | None]]
    ) -> RecordTrace:
        """Start a record's ``process`` span, continuing the trace its headers carry; end it
        with :meth:`RecordTrace.taken_in`. Only called while :attr:`enabled`."""
        carrier = {
            name.lower(): value.decode("utf-8", "replace")
            for name, value in headers
            if value is not None and name.lower() in self._fields
        }
        parent = propagate.extract(carrier)
        span = self._tracer.start_span(
            f"process {topic}",
            parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
            },
        )
        return RecordTrace(self._tracer, trace.set_span_in_context(span, parent))

    def call_span(
        self, endpoint: str, records: Sequence[RecordTrace]
    ) -> AbstractContextManager[object]:
        """The span of one Connector call carrying ``records`` (the batch lane's shape: see
        the module docstring); nothing when none of them is traced."""
        if not records:
            return nullcontext()
        if len(records) == 1:
            parent, links = records[0].context, None
        else:
            parent = otel_context.Context()  # a trace of its own, not the poll's or a record's
            links = [Link(r.span.get_span_context()) for r in records]
        return self._tracer.start_as_current_span(
            f"send {endpoint}",
            parent,
            kind=SpanKind.INTERNAL,
            links=links,
            attributes={"sagebridge.endpoint": endpoint, "sagebridge.records": len(records)},
        )

    def close(self) -> None:
        """Stop instrumenting and send the spans still buffered."""
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self._instrumentors.clear()
        shutdown = getattr(self._provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the standard variables ask for (entry-point names); none when tracing
    is to stay off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        named = "otlp" if endpoint else ""
    names = [n.strip() for n in named.split(",") if n.strip() and n.strip() != "none"]
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return [_OTLP_OVER.get(protocol, f"otlp_{protocol}") if n == "otlp" else n for n in names]


def _exporter(name: str) -> Any:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed "
            "(sagebridge ships 'otlp' over http/protobuf and 'console')"
        )
    return next(iter(found)).load()()


def _http_instrumentors() -> list[_Instrumentor]:
    """The instrumentation of each HTTP client library that is installed (an instrumentation
    package imports the library it instruments)."""
    found: list[_Instrumentor] = []
    for name in HTTP_INSTRUMENTORS:
        for entry in entry_points(group="opentelemetry_instrumentor", name=name):
            try:
                found.append(entry.load()())
            except ImportError:
                continue
    return found


@contextmanager
def _attached(context: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)
