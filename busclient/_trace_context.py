"""The caller's W3C trace context, sent as the request entry fields ``traceparent`` and
``tracestate`` (docs/protocol.md, "Message bus"; docs/operations.md, "Tracing").

A traced server (``SBUSR_TRACING=1``) makes the span of a bus entry a child of these fields,
so a call sent from traced code continues the caller's trace. The context comes from the first
of these that has one:

1. the current OpenTelemetry span of the calling code. OpenTelemetry is never required: no
   span can be current unless ``opentelemetry.trace`` is already imported, so it is looked
   for in :data:`sys.modules` and the W3C propagator is imported only then;
2. the sbusr call a worker is running (a method calling another sbusr over the bus): the
   trace context the server gave that call, read from :mod:`executor.context` only when a
   worker has loaded it (busclient does not import it).

Nothing current: no fields (an untraced call costs two dictionary look-ups).
"""

from __future__ import annotations

import sys
from typing import Any

from wire.keys import FIELD_TRACEPARENT, FIELD_TRACESTATE

__all__ = ["TraceContext", "current_trace_context"]

#: ``(traceparent, tracestate)``; tracestate is ``""`` when there is none.
TraceContext = tuple[str, str]


def _from_opentelemetry() -> TraceContext | None:
    """The current OpenTelemetry span's context; None without a valid current span."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)  # nothing when no valid span is current
    traceparent = carrier.get(FIELD_TRACEPARENT)
    if not traceparent:
        return None
    return traceparent, carrier.get(FIELD_TRACESTATE, "")


def _from_running_call() -> TraceContext | None:
    """The trace context of the sbusr call this worker runs; None outside a traced call."""
    module: Any = sys.modules.get("executor.context")
    if module is None:
        return None
    context = module.call_context.get()
    traceparent = context.get(FIELD_TRACEPARENT) if context else None
    if not isinstance(traceparent, str) or not traceparent:
        return None
    tracestate = context.get(FIELD_TRACESTATE)
    return traceparent, tracestate if isinstance(tracestate, str) else ""


def current_trace_context() -> TraceContext | None:
    """The trace context a request sent now carries (the module doc), or None.

    Returns:
        ``(traceparent, tracestate)`` as W3C Trace Context header values (tracestate ``""``
        when none), or None when the calling code runs in no trace.
    """
    return _from_opentelemetry() or _from_running_call()
