"""Traces through the real path: a record with a W3C ``traceparent`` on the broker, the
service in this process, the sandbox Connector over HTTP, the reply read back from Kafka.

Spans are read from the OpenTelemetry SDK's in-memory exporter (the service is handed a
provider), or, for the standard ``OTEL_*`` variables, from an OTLP/HTTP receiver in this test.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.dev.events import contact, event, produce
from service.dev.topics import Topics
from service.ops.traces import Tracing
from tests.conftest import TOKEN
from tests.support.kafka import Collector, Received
from tests.support.waiting import until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def traceparent(trace_id: str = TRACE, parent: str = PARENT) -> list[tuple[str, bytes]]:
    return [("traceparent", f"00-{trace_id}-{parent}-01".encode())]


def invoice(n: int) -> dict[str, object]:
    return {"InvoiceNo": f"INV{n:06d}", "CustomerNo": "ABC", "Amount": 100 + n}


def reply_trace(reply: Received) -> tuple[int, int]:
    """(trace id, span id) of a reply's ``traceparent``."""
    version, trace_id, span_id, _flags = reply.headers["traceparent"].decode().split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


def in_memory() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == int(trace_id, 16)
    ]


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.fixture
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


async def test_a_traceparent_is_continued_through_the_serial_lane_to_the_reply(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    tracing, exporter = in_memory()
    record = (b"k", event("inv-traced", invoice(1), type="ar_invoice.create"), traceparent())
    async with running_service(tracing=tracing):
        await produce(kafka_bootstrap, topics.events, [record])
        [reply] = await collector.wait_for(topics.replies, 1)

        async def published() -> bool:
            return bool(named(of_trace(exporter, TRACE), "publish "))

        await until(published, 10, "the reply's span")
    assert reply.json()["response"] == "SUCCESS"
    spans = of_trace(exporter, TRACE)
    [process] = named(spans, f"process {topics.events}")
    assert process.kind is SpanKind.CONSUMER and parent_id(process) == int(PARENT, 16)
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == "inv-traced"
    # The Connector call, made by the HTTP client's own instrumentation inside the record's span.
    [call] = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert parent_id(call) == span_id(process)
    assert call.attributes is not None and "/accountsReceivable" in str(call.attributes)
    [publish] = named(spans, "publish ")
    assert publish.kind is SpanKind.PRODUCER and parent_id(publish) == span_id(process)
    assert reply_trace(reply) == (int(TRACE, 16), span_id(publish))
    assert TOKEN not in "".join(s.to_json() for s in exporter.get_finished_spans())


async def test_a_batch_call_is_one_span_linked_to_each_record(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    tracing, exporter = in_memory()
    traces = {"c-1": "1" * 32, "c-2": "2" * 32}
    records = [
        (b"k", event(event_id, contact(n)), traceparent(trace_id))
        for n, (event_id, trace_id) in enumerate(traces.items())
    ]
    async with running_service(tracing=tracing, batch_wait_ms=500):
        await produce(kafka_bootstrap, topics.events, records)
        replies = await collector.wait_for(topics.replies, 2)

        async def published() -> bool:
            return all(named(of_trace(exporter, t), "publish ") for t in traces.values())

        await until(published, 10, "both replies' spans")
    processes = {
        event_id: named(of_trace(exporter, trace_id), "process ")[0]
        for event_id, trace_id in traces.items()
    }
    [send] = [s for s in exporter.get_finished_spans() if s.name.startswith("send ")]
    assert send.context is not None and send.context.trace_id not in {
        int(t, 16) for t in traces.values()
    }
    assert {link.context.span_id for link in send.links} == {span_id(p) for p in processes.values()}
    [call] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert parent_id(call) == span_id(send)
    for reply in replies:
        event_id = reply.json()["event_id"]
        trace_id, publish_id = reply_trace(reply)
        assert trace_id == int(traces[event_id], 16)
        [publish] = named(of_trace(exporter, traces[event_id]), "publish ")
        assert publish_id == span_id(publish)
        assert parent_id(publish) == span_id(processes[event_id])


async def test_a_refused_record_is_answered_and_dead_lettered_in_its_trace(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    tracing, exporter = in_memory()
    data = contact(1, State="TEXAS")  # longer than the contract allows
    record = (b"k", event("c-bad", data), traceparent())
    async with running_service(tracing=tracing):
        await produce(kafka_bootstrap, topics.events, [record])
        [reply] = await collector.wait_for(topics.replies, 1)
        [dead] = await collector.wait_for(topics.dlt, 1)
    assert reply.json()["stage"] == "validation"
    [publish] = named(of_trace(exporter, TRACE), "publish ")
    assert reply_trace(reply) == reply_trace(dead) == (int(TRACE, 16), span_id(publish))


class _OtlpReceiver(BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (_OtlpReceiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


async def test_the_standard_otel_variables_turn_tracing_on(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    no_otel_variables: None,
    otlp_receiver: tuple[str, list[ExportTraceServiceRequest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sagebridge-under-test")
    record = (b"k", event("inv-otlp", invoice(2), type="ar_invoice.create"), traceparent())
    async with running_service():
        await produce(kafka_bootstrap, topics.events, [record])
        [reply] = await collector.wait_for(topics.replies, 1)
    # Stopping the service flushed its spans to the endpoint.
    assert reply_trace(reply)[0] == int(TRACE, 16)
    services = set()
    names = set()
    for request in received:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if span.trace_id == bytes.fromhex(TRACE):
                        services.add(attributes["service.name"])
                        names.add(span.name)
    assert services == {"sagebridge-under-test"}
    assert {f"process {topics.events}", f"publish {topics.replies}"} <= names


async def test_without_otel_variables_nothing_is_traced(
    running_service,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    no_otel_variables: None,
) -> None:
    record = (b"k", event("inv-untraced", invoice(3), type="ar_invoice.create"), traceparent())
    async with running_service() as service:
        assert not service.tracing.enabled
        await produce(kafka_bootstrap, topics.events, [record])
        [reply] = await collector.wait_for(topics.replies, 1)
    assert reply.json()["response"] == "SUCCESS"
    assert "traceparent" not in reply.headers
