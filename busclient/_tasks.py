"""Small asyncio helpers: stopping tasks that sit in redis-py commands, a writer's outbox.

On Python 3.11 a cancellation that arrives while redis-py is inside ``asyncio.wait_for`` (it
wraps socket writes in one) can be swallowed when the inner wait completes at the same
moment (CPython gh-86296, fixed in 3.12): the task goes on to its next command. So a task is
cancelled again until it is done.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

__all__ = ["Outbox", "cancel_and_wait"]

T = TypeVar("T")

#: How long to wait for a cancelled task before cancelling it again, seconds.
RECANCEL_S = 0.05


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (again and again) until it is done; its outcome is retrieved."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=RECANCEL_S)
    if not task.cancelled():
        task.exception()


class Outbox(Generic[T]):
    """Items queued for one writer task, which takes them all at once per round trip.

    ``put`` from the event loop's thread; the writer loops on ``items = await take()``.
    """

    def __init__(self) -> None:
        self._items: list[T] = []
        self._ready: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Queue ``item`` and wake the writer."""
        if self._ready is None:
            self._ready = asyncio.Event()
        self._items.append(item)
        self._ready.set()

    async def take(self) -> list[T]:
        """Wait until something is queued; return everything queued (at least one item)."""
        if self._ready is None:
            self._ready = asyncio.Event()
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        items, self._items = self._items, []
        return items
