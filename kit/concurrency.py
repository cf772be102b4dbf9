"""Marks for methods that must not run beside other calls of themselves.

A worker runs many calls at once (``SBUSR_WORKER_CONCURRENCY``): ``async def`` methods as tasks
on its event loop, plain functions in its threads. A method whose code is not safe to run
twice at the same time in one process (a global it mutates without a lock, a client library
that is not thread-safe) says so with :func:`one_at_a_time`. See docs/methods.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from executor.context import ONE_AT_A_TIME_ATTRIBUTE

__all__ = ["one_at_a_time"]

Function = TypeVar("Function", bound=Callable[..., Any])


def one_at_a_time(function: Function) -> Function:
    """Run the calls of this method one after the other within a worker.

    The calls wait their turn in the worker (a lock per method; waiting counts toward the
    call's time limit) while other methods run beside them. Other workers run their own calls
    of it at the same time: state shared between workers belongs in a database, Redis or a
    :func:`kit.lock`. Works on ``def`` and ``async def``; below ``@classmethod`` /
    ``@staticmethod``.

    Example::

        from kit import one_at_a_time

        @one_at_a_time
        def next_ticket():
            ...

    Returns:
        ``function`` itself, marked (no wrapper).
    """
    setattr(function, ONE_AT_A_TIME_ATTRIBUTE, True)
    return function
