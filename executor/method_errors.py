"""What a worker logs and answers when a method fails.

- A method that **raises** (any exception but a :class:`~wire.errors.JsonRpcError`) is a
  failure the operator must see: one ERROR record with the traceback, the method, the call id
  and (through the call context) the request id. The caller gets -32000 with
  ``data: {"type", "message"}``.
- A method that raises a ``JsonRpcError`` answers on purpose: one INFO record, no traceback.

With ``expose_errors`` off (``SBUSR_EXPOSE_ERRORS=0``) ``data.message`` does not carry the
exception's text (it may hold SQL, parameters, paths) but a pointer to the log record:
``"see the server log, request_id=<id>"``; ``data.type`` stays.
"""

from __future__ import annotations

import contextvars
import logging
import traceback
from typing import Any

from executor.context import call_context
from wire.errors import JsonRpcError

__all__ = ["current_call_id", "error_data", "log_raised", "log_refused", "log_pointer"]

#: The records of failed calls (a name of its own, so operators can route or filter them).
logger = logging.getLogger("sbusr.calls")

#: The pool's id of the call being run, per task or thread (0: none).
current_call_id: contextvars.ContextVar[int] = contextvars.ContextVar(
    "sbusr_current_call_id", default=0
)


def log_pointer() -> str:
    """Where the log record of the current call is: ``"request_id=<id>"`` (HTTP, bus), else
    ``"job_id=<id>"`` (a scheduled run), else ``"call_id=<n>"``."""
    context = call_context.get() or {}
    for key in ("request_id", "job_id"):
        if context.get(key) is not None:
            return f"{key}={context[key]}"
    return f"call_id={current_call_id.get()}"


def log_raised(method: str, exc: BaseException) -> None:
    """Log a method's exception at ERROR with its traceback, the method and the call id.

    Must be called while ``exc`` is being handled (the record takes its traceback).
    """
    logger.error(
        "method %s raised %s (call_id=%d): %s",
        method,
        type(exc).__name__,
        current_call_id.get(),
        exc,
        exc_info=exc,
        extra={"rpc_method": method, "call_id": current_call_id.get()},
    )


def log_refused(method: str, error: JsonRpcError) -> None:
    """Log a ``JsonRpcError`` a method raised on purpose: INFO, no traceback."""
    logger.info(
        "method %s answered error %d (call_id=%d): %s",
        method,
        error.code,
        current_call_id.get(),
        error.message,
        extra={"rpc_method": method, "call_id": current_call_id.get()},
    )


def error_data(exc: BaseException, debug: bool, expose_errors: bool) -> dict[str, Any]:
    """``error.data`` of a method's exception: ``{"type", "message", "traceback"?}``.

    Args:
        exc: the exception, being handled.
        debug: add ``traceback`` (``SBUSR_DEBUG``).
        expose_errors: ``message`` is the exception's text; False: a pointer to the log
            record (:func:`log_pointer`).
    """
    if expose_errors:
        message = str(exc)
    else:
        message = f"hidden (SBUSR_EXPOSE_ERRORS=0): see the server log, {log_pointer()}"
    data: dict[str, Any] = {"type": type(exc).__name__, "message": message}
    if debug:
        data["traceback"] = traceback.format_exc()
    return data
