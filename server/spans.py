"""The spans of sbusr calls, made with the OpenTelemetry SDK (docs/operations.md, "Tracing").

Imported only when tracing is on (:func:`server.tracing.configure`). Every span is made in
the server process, on its event loop; the workers import nothing of OpenTelemetry. A
call's trace::

    POST /rpc  (SERVER, one per HTTP request)    or  process sbusr:rpc  (CONSUMER, per entry)
                                                 or  job <id>  (one per scheduled run)
      sbusr.queue_wait  (submit -> sent to a worker)
      <method>          (sent to a worker -> answered: the call in the worker)

A request to a REST route (``/api/*``, ``/sys/*``, ...: the ``tornado.web`` handlers) gets one
SERVER span, ``<method> <route>`` (e.g. ``GET /api/jobs/{job_id}``), from its arrival until its
response is sent (:meth:`CallSpans.rest_request_started`; hooked in
:mod:`server.http.traced`).

The transport span continues the caller's trace: its parent is the W3C ``traceparent`` (and
``tracestate``) of the HTTP request's headers or of the bus entry's fields. The call span's
own ``traceparent`` goes to the worker in the call's context, where :mod:`kit.http` clients
pass it on to the services the method calls; so their spans are children of the call span.

Attributes (OpenTelemetry's RPC conventions where they fit):

====================================  ==================================================
``rpc.system``                        ``jsonrpc``
``rpc.method``                        the JSON-RPC method name
``rpc.jsonrpc.version``               ``2.0``
``rpc.jsonrpc.error_code``            the error object's code (error answers only)
``rpc.jsonrpc.error_message``         the error object's message (error answers only)
``sbusr.outcome``                     ``result``, or the error code as text
``sbusr.worker.pid``                  the worker process that ran the call
``sbusr.pool.generation``             the generation of that worker
``sbusr.request_id``                  the request id (HTTP) or ``bus:<entry id>``
``http.response.status_code``         the response's status (REST routes)
``sbusr.job.id``, ``sbusr.job.run_time``  the job and its occurrence (job runs)
====================================  ==================================================

A call submitted with no span current (the server's own ``rpc.*`` calls to its workers)
gets no spans.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from executor.pool import Call
from server.metrics import outcome_of_error
from wire.codec import decode_strict
from wire.keys import FIELD_TRACEPARENT, FIELD_TRACESTATE

__all__ = ["QUEUE_WAIT_SPAN", "CallSpans"]

_T = TypeVar("_T")

#: Name of the span of a call's wait in the pool's queue.
QUEUE_WAIT_SPAN = "sbusr.queue_wait"

RPC_SYSTEM = "rpc.system"
RPC_METHOD = "rpc.method"
RPC_JSONRPC_VERSION = "rpc.jsonrpc.version"
RPC_JSONRPC_ERROR_CODE = "rpc.jsonrpc.error_code"
RPC_JSONRPC_ERROR_MESSAGE = "rpc.jsonrpc.error_message"
OUTCOME = "sbusr.outcome"
WORKER_PID = "sbusr.worker.pid"
POOL_GENERATION = "sbusr.pool.generation"
REQUEST_ID = "sbusr.request_id"
JOB_ID = "sbusr.job.id"
JOB_RUN_TIME = "sbusr.job.run_time"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

_PROPAGATOR = TraceContextTextMapPropagator()


class _CallTrace:
    """The spans of one call: its parent context, the queue wait, the call in the worker."""

    __slots__ = ("parent", "queue_wait", "in_worker")

    def __init__(self, parent: otel_context.Context, queue_wait: trace.Span) -> None:
        self.parent = parent
        self.queue_wait = queue_wait
        self.in_worker: trace.Span | None = None


def _entry_carrier(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """The W3C trace context fields of a bus entry's ``fields``, as text."""
    carrier: dict[str, str] = {}
    for name in (FIELD_TRACEPARENT, FIELD_TRACESTATE):
        value = fields.get(name.encode())
        if value:
            carrier[name] = value.decode("ascii", "replace")
    return carrier


def _record_outcome(span: trace.Span, ok: bool, payload: bytes) -> None:
    """Put the answer's outcome on ``span``; an error answer sets the span's status to ERROR."""
    if ok:
        span.set_attribute(OUTCOME, "result")
        return
    code = outcome_of_error(payload)
    span.set_attribute(OUTCOME, code)
    if code.lstrip("-").isdigit():
        span.set_attribute(RPC_JSONRPC_ERROR_CODE, int(code))
    try:
        message = decode_strict(payload).get("message")
    except (ValueError, AttributeError, RecursionError):
        message = None
    if isinstance(message, str):
        span.set_attribute(RPC_JSONRPC_ERROR_MESSAGE, message)
    span.set_status(Status(StatusCode.ERROR, f"JSON-RPC error {code}"))


class CallSpans:
    """Records the spans of the module doc; the pool's :class:`executor.pool.CallTracer`.

    Args:
        provider: the tracer provider whose processors export the spans; :meth:`shutdown`
            flushes and closes it.

    Use from the event loop's thread only.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("sbusr")

    # ------------------------------------------------------------------ transports
    async def http_request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        started_s: float,
        request_id: str,
        answer: Awaitable[_T],
    ) -> _T:
        """Await ``answer`` inside the SERVER span of one HTTP request.

        Args:
            method: the HTTP method, e.g. ``POST``.
            path: the request path, e.g. ``/rpc``.
            headers: the request headers; ``traceparent``/``tracestate`` name the parent.
            started_s: when the request arrived, epoch seconds (``time.time()``).
            request_id: the request's ``X-Request-ID``.
            answer: what answers the request (its calls are submitted under the span).

        Returns:
            What ``answer`` returns; its exceptions pass through (recorded on the span).
        """
        span = self.tracer.start_span(
            f"{method} {path}",
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            start_time=int(started_s * 1e9),
            attributes={
                "http.request.method": method,
                "url.path": path,
                "http.route": path,
                REQUEST_ID: request_id,
            },
        )
        with trace.use_span(span, end_on_exit=True):
            return await answer

    def rest_request_started(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        started_s: float,
        request_id: str,
    ) -> trace.Span:
        """Start the SERVER span of one request to a REST route (``/api/*``, ``/sys/*``, ...).

        Args:
            method: the HTTP method, e.g. ``GET``.
            path: the request path, e.g. ``/api/jobs/nightly``.
            headers: the request headers; ``traceparent``/``tracestate`` name the parent.
            started_s: when the request arrived, epoch seconds (``time.time()``).
            request_id: the request's ``X-Request-ID``.

        Returns:
            The span, not made current; end it with :meth:`rest_request_finished`. Its name
            is the method alone until the route is known.
        """
        return self.tracer.start_span(
            method,
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            start_time=int(started_s * 1e9),
            attributes={"http.request.method": method, "url.path": path, REQUEST_ID: request_id},
        )

    @staticmethod
    def rest_request_finished(
        span: trace.Span, method: str, status_code: int, route: str | None
    ) -> None:
        """End a span of :meth:`rest_request_started` once the response is sent.

        Args:
            span: the request's span.
            method: the request's HTTP method, as given to :meth:`rest_request_started`.
            status_code: the response's HTTP status; 5xx sets the span's status to ERROR.
            route: the route's path template (``/api/jobs/{job_id}``), or None for a path
                no route serves; it names the span ``<method> <route>``.
        """
        span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status_code)
        if route is not None:
            span.set_attribute("http.route", route)
            span.update_name(f"{method} {route}")
        if status_code >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))
        span.end()

    async def bus_entry(
        self,
        stream: str,
        entry_id: str,
        fields: Mapping[bytes, bytes],
        answer: Awaitable[_T],
    ) -> _T:
        """Await ``answer`` inside the CONSUMER span of one bus entry.

        Args:
            stream: the request stream's key, e.g. ``sbusr:rpc``.
            entry_id: the entry's id.
            fields: the entry's fields; ``traceparent`` and ``tracestate`` name the parent.
            answer: what answers the entry.

        Returns:
            What ``answer`` returns; its exceptions pass through (recorded on the span).
        """
        span = self.tracer.start_span(
            f"process {stream}",
            context=_PROPAGATOR.extract(_entry_carrier(fields)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": stream,
                "messaging.message.id": entry_id,
                REQUEST_ID: "bus:" + entry_id,
            },
        )
        with trace.use_span(span, end_on_exit=True):
            return await answer

    async def job_run(self, job_id: str, run_time: str, answer: Awaitable[_T]) -> _T:
        """Await ``answer`` inside the span of one scheduled job run (a new trace).

        Args:
            job_id: the job's id.
            run_time: the occurrence's run time, ISO 8601.
            answer: the run (its call is submitted under the span).

        Returns:
            What ``answer`` returns; its exceptions pass through (recorded on the span).
        """
        span = self.tracer.start_span(
            f"job {job_id}",
            context=otel_context.Context(),  # a root: no caller's trace to continue
            attributes={JOB_ID: job_id, JOB_RUN_TIME: run_time},
        )
        with trace.use_span(span, end_on_exit=True):
            return await answer

    # ------------------------------------------------------------------ the pool's tracer
    def submitted(self, calls: list[Call]) -> None:
        """Start each call's queue wait span under the current span (none current: no spans)."""
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).get_span_context().is_valid:
            return
        now_ns = time.time_ns()
        for call in calls:
            queue_wait = self.tracer.start_span(
                QUEUE_WAIT_SPAN,
                context=parent,
                start_time=now_ns,
                attributes={RPC_SYSTEM: "jsonrpc", RPC_METHOD: call.method},
            )
            call.trace = _CallTrace(parent, queue_wait)

    def sent(self, call: Call, worker_pid: int, generation: int) -> None:
        """End the queue wait, start the call's span, give the worker its ``traceparent``."""
        call_trace: _CallTrace | None = call.trace
        if call_trace is None:
            return
        now_ns = time.time_ns()
        if call_trace.in_worker is None:
            call_trace.queue_wait.end(now_ns)
        else:  # sent again (its first worker never started it): close the first attempt
            call_trace.in_worker.set_attribute(OUTCOME, "resent")
            call_trace.in_worker.end(now_ns)
        span = self.tracer.start_span(
            call.method,
            context=call_trace.parent,
            start_time=now_ns,
            attributes={
                RPC_SYSTEM: "jsonrpc",
                RPC_METHOD: call.method,
                RPC_JSONRPC_VERSION: "2.0",
                WORKER_PID: worker_pid,
                POOL_GENERATION: generation,
            },
        )
        call_trace.in_worker = span
        context: dict[str, Any] = dict(call.context or {})
        _PROPAGATOR.inject(context, context=trace.set_span_in_context(span))
        call.context = context

    def answered(self, call: Call, ok: bool, payload: bytes) -> None:
        """End the call's open span (the worker's, or the queue wait's) with its outcome."""
        call_trace: _CallTrace | None = call.trace
        if call_trace is None:
            return
        call.trace = None
        span = call_trace.in_worker or call_trace.queue_wait
        _record_outcome(span, ok, payload)
        span.end()

    def shutdown(self) -> None:
        """Export the spans still buffered and stop the exporters (blocking)."""
        self.provider.shutdown()
