"""Tracing in-process: spans of the SDK's in-memory exporter, over a real pool of workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from executor.pool import Pool
from server import tracing
from server.jsonrpc import JsonRpcCore
from server.spans import QUEUE_WAIT_SPAN, CallSpans
from tests.support import PROJECT_DIR, StartServer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"

#: a method that answers the trace context its worker got with the call
PROBE = """
from executor.context import call_context


def seen():
    context = call_context.get() or {}
    return {"traceparent": context.get("traceparent"), "tracestate": context.get("tracestate")}
"""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[CallSpans]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield CallSpans(provider)
    provider.shutdown()


@pytest.fixture
async def pool(methods_dir: Path, spans: CallSpans) -> AsyncIterator[Pool]:
    (methods_dir / "trace_probe.py").write_text(PROBE)
    pool = Pool(methods_dir, processes=1, max_tasks_per_child=0, queue_maxsize=10)
    pool.tracer = spans
    await pool.start()
    yield pool
    await pool.shutdown(5)


def request(method: str, params: Any, request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


async def test_http_request_call_and_queue_spans_continue_the_incoming_trace(
    pool: Pool, spans: CallSpans, exporter: InMemorySpanExporter
) -> None:
    core = JsonRpcCore(pool, timeout_s=10, max_batch=4)
    context = {"request_id": "r-1", "transport": "http"}
    payload = json.dumps([request("echo", ["x"], 1), request("trace_probe.seen", [], 2)])
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    reply = await spans.http_request(
        "POST", "/rpc", headers, time.time(), "r-1", core.handle(payload, context)
    )
    assert reply.body is not None
    answers = {answer["id"]: answer for answer in json.loads(reply.body)}
    finished = exporter.get_finished_spans()
    (http,) = named(finished, "POST /rpc")
    assert http.kind is SpanKind.SERVER
    assert f"{http.context.trace_id:032x}" == TRACE_ID
    assert f"{parent_id(http):016x}" == CALLER_SPAN_ID
    assert http.attributes is not None and http.attributes["sbusr.request_id"] == "r-1"
    queue_waits = named(finished, QUEUE_WAIT_SPAN)
    (echo,) = named(finished, "echo")
    (probe,) = named(finished, "trace_probe.seen")
    assert len(queue_waits) == 2
    for span in (*queue_waits, echo, probe):
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert parent_id(span) == http.context.span_id
    worker_pids = {worker["pid"] for worker in pool.status()["workers"]}
    assert echo.attributes is not None
    assert echo.attributes["rpc.system"] == "jsonrpc"
    assert echo.attributes["rpc.method"] == "echo"
    assert echo.attributes["sbusr.outcome"] == "result"
    assert echo.attributes["sbusr.worker.pid"] in worker_pids
    assert echo.attributes["sbusr.pool.generation"] == 1
    # the worker got the trace context of its call's own span
    seen = answers[2]["result"]
    assert seen == {
        "traceparent": f"00-{TRACE_ID}-{probe.context.span_id:016x}-01",
        "tracestate": "vendor=1",
    }
    assert "traceparent" not in context  # the caller's context is not changed


async def test_an_error_answer_marks_the_call_span(
    pool: Pool, spans: CallSpans, exporter: InMemorySpanExporter
) -> None:
    core = JsonRpcCore(pool, timeout_s=10, max_batch=4)
    payload = json.dumps(request("exception", ["boom"], 1))
    await spans.http_request(
        "POST", "/rpc", {"traceparent": TRACEPARENT}, time.time(), "r-2", core.handle(payload)
    )
    (call,) = named(exporter.get_finished_spans(), "exception")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes["rpc.jsonrpc.error_code"] == -32000
    assert call.attributes["sbusr.outcome"] == "-32000"
    assert call.attributes["rpc.jsonrpc.error_message"] == "Server error"  # not error.data


async def test_bus_entry_span_continues_the_entry_traceparent(
    pool: Pool, spans: CallSpans, exporter: InMemorySpanExporter
) -> None:
    core = JsonRpcCore(pool, timeout_s=10, max_batch=4)
    payload = json.dumps(request("echo", ["x"], 1)).encode()
    fields = {b"data": payload, b"traceparent": TRACEPARENT.encode()}
    await spans.bus_entry("sbusr:rpc", "1-0", fields, core.handle(payload))
    finished = exporter.get_finished_spans()
    (entry,) = named(finished, "process sbusr:rpc")
    assert entry.kind is SpanKind.CONSUMER
    assert f"{entry.context.trace_id:032x}" == TRACE_ID
    assert f"{parent_id(entry):016x}" == CALLER_SPAN_ID
    (echo,) = named(finished, "echo")
    assert parent_id(echo) == entry.context.span_id


async def test_a_job_run_starts_a_trace_of_its_own(
    pool: Pool, spans: CallSpans, exporter: InMemorySpanExporter
) -> None:
    run = pool.run("trace_probe.seen", [], 10, {"transport": "job"})
    ok, payload = await spans.job_run("tick", "2026-01-01T00:00:00+00:00", run)
    assert ok
    finished = exporter.get_finished_spans()
    (job,) = named(finished, "job tick")
    (call,) = named(finished, "trace_probe.seen")
    assert job.parent is None
    assert job.attributes is not None and job.attributes["sbusr.job.id"] == "tick"
    assert call.context.trace_id == job.context.trace_id
    assert parent_id(call) == job.context.span_id
    trace_id = f"{job.context.trace_id:032x}"
    version_trace_span = json.loads(payload)["traceparent"].rsplit("-", 1)[0]  # flags aside
    assert version_trace_span == f"00-{trace_id}-{call.context.span_id:016x}"


async def test_a_call_without_a_current_span_gets_no_spans(
    pool: Pool, exporter: InMemorySpanExporter
) -> None:
    ok, payload = await pool.run("trace_probe.seen", [], 10, {"transport": "job"})
    assert ok and json.loads(payload) == {"traceparent": None, "tracestate": None}
    assert exporter.get_finished_spans() == ()


def test_unknown_exporter_is_refused_with_the_variable_named() -> None:
    with pytest.raises(tracing.TracingError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        tracing.configure(True, {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert tracing.active is None


def test_tracing_off_imports_nothing_of_the_tracing_sdk() -> None:
    # (redis-py imports OpenTelemetry's metrics API on its own when it is installed)
    tracing_modules = (
        "server.spans",
        "opentelemetry.sdk.trace",
        "opentelemetry.exporter",
        "opentelemetry.trace.propagation.tracecontext",
    )
    script = (
        "import sys, server.main, server.tracing, kit.http;"
        "assert server.tracing.configure(False) is None;"
        f"print(sorted(name for name in sys.modules if name.startswith({tracing_modules!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_server_refuses_to_start_with_an_unknown_exporter(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_TRACING": "1", "OTEL_TRACES_EXPORTER": "zipkin"}, wait=False)
    assert server.process.wait(30) == 2
    assert "OTEL_TRACES_EXPORTER='zipkin': unknown exporter 'zipkin'" in server.log()
