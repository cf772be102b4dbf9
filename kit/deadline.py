"""The caller's deadline of the call a method is running (design.md, "Deadlines").

A caller may bound a call in time (HTTP ``X-Timeout-Ms``, bus ``deadline_ms``); the server
cuts the call there (-32001), so work the method starts after it is wasted. A method reads the
deadline to pass it on, e.g. as the time-out of the web services it calls (the ``kit.http``
clients do so by themselves) or as the ``deadline_ms`` of a bus call it makes::

    from kit import deadline_ms, time_left_s

    def quote(item):
        left_s = time_left_s()          # None: the caller set no deadline
        if left_s is not None and left_s < 0.5:
            raise JsonRpcError(4008, "not enough time left to ask the supplier")
        ...

Both read :data:`executor.context.call_context`, so they answer for the call of the current
task or thread; outside a call (or in a scheduled job) they return None.
"""

from __future__ import annotations

from executor.context import call_context
from wire.deadline import now_ms

__all__ = ["deadline_ms", "time_left_s"]


def deadline_ms() -> float | None:
    """The caller's deadline of the current call, Unix epoch milliseconds; None when it has none.

    Example: a call sent with ``X-Timeout-Ms: 2000`` at 12:00:00.000 UTC of 2024-01-01 reads
    ``1704110402000.0``.
    """
    context = call_context.get()
    if not context:
        return None
    value = context.get("deadline_ms")
    return None if value is None else float(value)


def time_left_s() -> float | None:
    """Seconds left until the current call's deadline (negative once passed); None without one."""
    deadline = deadline_ms()
    if deadline is None:
        return None
    return (deadline - now_ms()) / 1000.0
