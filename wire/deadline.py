"""Caller deadlines on the wire (design.md, "Deadlines and idempotency").

A caller bounds a call in time with the HTTP header ``X-Timeout-Ms`` (milliseconds, relative
to the request's arrival) or the bus entry field ``deadline_ms`` (absolute, Unix epoch
milliseconds). Both become one absolute deadline in epoch milliseconds, the one unit the
server, its workers and the methods use. Parsing here; what a deadline does: the pool
(:mod:`executor.pool`), the core (:mod:`server.jsonrpc`) and the bus consumer.
"""

from __future__ import annotations

import math
import time

__all__ = [
    "FIELD_DEADLINE_MS",
    "TIMEOUT_HEADER",
    "deadline_from_timeout_ms",
    "now_ms",
    "parse_deadline_ms",
]

#: The HTTP request header: the call's time budget in milliseconds, from the request's arrival.
TIMEOUT_HEADER = "X-Timeout-Ms"
#: The bus entry field: the call's deadline, Unix epoch milliseconds.
FIELD_DEADLINE_MS = "deadline_ms"


def now_ms() -> float:
    """The wall clock as Unix epoch milliseconds (a float)."""
    return time.time() * 1000.0


def _number(text: str | bytes, what: str) -> float:
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a number of milliseconds, not {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {text[:40]!r}")
    return value


def deadline_from_timeout_ms(text: str | bytes, arrived_ms: float) -> float:
    """The deadline of an ``X-Timeout-Ms`` header value.

    Args:
        text: the header value, e.g. ``"2500"`` (milliseconds; a decimal fraction is kept).
        arrived_ms: when the request arrived, epoch milliseconds.

    Returns:
        ``arrived_ms + value``, epoch milliseconds. Example: ``("250", 1000.0)`` -> ``1250.0``.

    Raises:
        ValueError: not a number, negative, NaN or infinite (the message says which).
    """
    return arrived_ms + _number(text, TIMEOUT_HEADER)


def parse_deadline_ms(text: str | bytes) -> float:
    """The value of a ``deadline_ms`` entry field, epoch milliseconds.

    Example: ``b"1700000000000"`` -> ``1700000000000.0``.

    Raises:
        ValueError: not a number, negative, NaN or infinite (the message says which).
    """
    return _number(text, FIELD_DEADLINE_MS)
