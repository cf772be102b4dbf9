"""The facts about the call a worker is running, shared by the worker and what methods import.

Calls run side by side in a worker (tasks on its loop, threads), so the facts live in a
:class:`contextvars.ContextVar`: the worker sets it inside each call's own task or thread
context, and every log record or :func:`kit.current_job` reads its own call's value.

The worker runs as ``python -m executor.worker`` (module ``__main__``), so anything a method
needs to read about its call lives here, in an importable module, not in the worker module.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["ONE_AT_A_TIME_ATTRIBUTE", "TRACE_CONTEXT_KEYS", "call_context"]

#: Facts about the call being run (e.g. ``{"request_id": "...", "transport": "http"}``, or
#: ``{"job_id", "job_run_time", "transport": "job"}`` for a scheduled job), for log records and
#: :func:`kit.current_job`; with tracing on, also the W3C ``traceparent`` (and ``tracestate``)
#: of the call's span, which :mod:`kit.http` clients pass on.
call_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sbusr_call_context", default=None
)

#: set (True) by :func:`kit.one_at_a_time` on a method whose calls must not overlap in a worker
ONE_AT_A_TIME_ATTRIBUTE = "__sbusr_one_at_a_time__"

#: The keys of the call context that hold the W3C trace context (also the HTTP header names).
TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")
