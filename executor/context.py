"""The facts about the call a worker is running, shared by the worker and what methods import.

The worker runs as ``python -m executor.worker`` (module ``__main__``), so anything a method
needs to read about its call lives here, in an importable module, not in the worker module.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["call_context"]

#: Facts about the call being run (e.g. ``{"request_id": "..."}``, or ``{"job_id",
#: "job_run_time"}`` for a scheduled job), for log records and :func:`kit.current_job`.
call_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sbusr_call_context", default=None)
