"""BusClient and AsyncBusClient pass the caller's trace context (``traceparent`` fields).

A call made inside an OpenTelemetry span (the test's own SDK tracer, in-memory exporter) or
inside a traced sbusr call (a method calling over the bus) carries the span's context; the
traced server's spans (exported to an OTLP receiver on loopback) then share its trace id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer, format_span_id, format_trace_id

from busclient import AsyncBusClient, BusClient
from tests.otlp_receiver import KIND_CONSUMER, OtlpReceiver, ReceivedSpan
from tests.support import ServerProcess

#: a method that calls ``echo`` of the sbusr on the same bus, through BusClient
RELAY = """
from busclient import BusClient


def echo(redis_url, text):
    with BusClient(redis_url) as bus:
        return bus.call("echo", [text], timeout_s=10)
"""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test")
    provider.shutdown()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def only_entry_fields(raw: redis.Redis) -> dict[bytes, bytes]:
    """The fields of the one entry of the request stream."""
    entries: Any = raw.xrange("sbusr:rpc")
    (entry,) = entries
    return dict(entry[1])


def test_a_call_outside_any_trace_sends_no_trace_fields(redis_url: str, raw: redis.Redis) -> None:
    with BusClient(redis_url) as bus:
        bus.notify("echo", ["untraced"])
    fields = only_entry_fields(raw)
    assert b"traceparent" not in fields and b"tracestate" not in fields


def test_a_sync_notification_inside_a_span_carries_its_traceparent(
    redis_url: str, raw: redis.Redis, tracer: Tracer
) -> None:
    with tracer.start_as_current_span("caller") as span, BusClient(redis_url) as bus:
        bus.notify("echo", ["traced"])
    context = span.get_span_context()
    version, trace_id, parent_id, _ = only_entry_fields(raw)[b"traceparent"].decode().split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        format_trace_id(context.trace_id),
        format_span_id(context.span_id),
    )


def test_an_async_notification_inside_a_span_carries_its_traceparent(
    redis_url: str, raw: redis.Redis, tracer: Tracer
) -> None:
    async def send() -> str:
        async with AsyncBusClient(redis_url) as bus:
            with tracer.start_as_current_span("caller") as span:
                await bus.notify("echo", ["traced"])
        return format_trace_id(span.get_span_context().trace_id)

    trace_id = asyncio.run(send())
    traceparent = only_entry_fields(raw)[b"traceparent"].decode()
    assert traceparent.split("-")[1] == trace_id


@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_servers_spans_continue_the_callers_trace(
    client: str,
    bus_server: Callable[..., ServerProcess],
    redis_url: str,
    receiver: OtlpReceiver,
    tracer: Tracer,
    exporter: InMemorySpanExporter,
) -> None:
    bus_server(env=receiver.environment())

    async def call_async() -> str:
        async with AsyncBusClient(redis_url) as bus:
            with tracer.start_as_current_span("caller"):
                result: str = await bus.call("echo", ["hi"], timeout_s=15)
        return result

    if client == "sync":
        with tracer.start_as_current_span("caller"), BusClient(redis_url) as bus:
            assert bus.call("echo", ["hi"], timeout_s=15) == "hi"
    else:
        assert asyncio.run(call_async()) == "hi"
    (caller,) = exporter.get_finished_spans()
    caller_context = caller.get_span_context()
    assert caller_context is not None
    trace_id = format_trace_id(caller_context.trace_id)

    def complete(spans: list[ReceivedSpan]) -> bool:
        return bool(named(spans, "process sbusr:rpc")) and bool(named(spans, "echo"))

    spans = receiver.wait_for_spans(complete)
    (entry,) = named(spans, "process sbusr:rpc")
    (call,) = named(spans, "echo")
    assert entry.kind == KIND_CONSUMER
    assert (entry.trace_id, entry.parent_span_id) == (
        trace_id,
        format_span_id(caller_context.span_id),
    )
    assert (call.trace_id, call.parent_span_id) == (trace_id, entry.span_id)


def test_a_method_calling_over_the_bus_continues_its_calls_trace(
    bus_server: Callable[..., ServerProcess],
    methods_dir: Path,
    redis_url: str,
    receiver: OtlpReceiver,
) -> None:
    (methods_dir / "relay.py").write_text(RELAY)
    server = bus_server(env=receiver.environment())
    trace_id, caller_span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    request = {"jsonrpc": "2.0", "method": "relay.echo", "params": [redis_url, "hop"], "id": 1}
    response = server.post(request, headers={"traceparent": f"00-{trace_id}-{caller_span_id}-01"})
    assert response.json() == {"jsonrpc": "2.0", "result": "hop", "id": 1}

    def complete(spans: list[ReceivedSpan]) -> bool:
        return bool(named(spans, "relay.echo")) and bool(named(spans, "echo"))

    spans = receiver.wait_for_spans(complete)
    (relay,) = named(spans, "relay.echo")
    (entry,) = named(spans, "process sbusr:rpc")
    (echo,) = named(spans, "echo")
    assert relay.trace_id == trace_id
    assert (entry.trace_id, entry.parent_span_id) == (trace_id, relay.span_id)
    assert (echo.trace_id, echo.parent_span_id) == (trace_id, entry.span_id)
