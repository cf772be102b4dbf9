"""Reply demultiplexers: one loop per client instance pops its reply list and dispatches.

Why one list per client and not one per call: a call that waits on its own key needs its own
blocked connection (``BLPOP`` holds the connection while it waits), so a thousand concurrent
calls would need a thousand Redis connections. Here every call of a client instance names the
same ``reply_to`` list; one loop pops up to :data:`POP_COUNT` replies per round trip with
``BLMPOP`` (Redis >= 7.0) and hands each to ``on_reply(raw)``, which finds the waiting call by
its JSON-RPC id. A client thus needs two connections however many calls it has in flight:
one blocked reading replies, one (or a few) sending requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import redis
import redis.asyncio
from redis.typing import ListMultiPopResponse

from busclient._backoff import Outage
from busclient._connection import CONNECTION_ERRORS
from busclient._tasks import cancel_and_wait

__all__ = ["AsyncReplyReader", "ThreadReplyReader", "REPLY_BLOCK_S", "POP_COUNT", "WAKE_UP"]

logger = logging.getLogger(__name__)

#: How long one BLMPOP blocks, seconds.
REPLY_BLOCK_S = 5.0
#: Most replies popped per round trip.
POP_COUNT = 256
#: Pushed to a client's own list to wake its thread reader at close (never a JSON text).
WAKE_UP = b""


def _popped(response: ListMultiPopResponse) -> list[bytes]:
    """The elements of a ``BLMPOP`` reply (``[key, [element, ...]]``; None after a block)."""
    if not response or not isinstance(response[1], list):
        return []
    return [element for element in response[1] if isinstance(element, bytes)]


class AsyncReplyReader:
    """An asyncio task popping ``key`` and calling ``on_reply(raw bytes)`` for each element.

    Args:
        client: a Redis client whose socket timeout exceeds :data:`REPLY_BLOCK_S`.
        key: the reply list.
        on_reply: called in the loop's thread for each popped element, in order.
        what: names the reader in log lines.
        outage: share another loop's outage tracker (one log line for both), else its own.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        key: str,
        on_reply: Callable[[bytes], None],
        what: str,
        outage: Outage | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.on_reply = on_reply
        self.outage = outage or Outage(logger, what)
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        """Start the task unless it runs (call from the event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                popped = await self.client.blmpop(
                    REPLY_BLOCK_S, 1, self.key, direction="LEFT", count=POP_COUNT
                )
                self.outage.recovered()
            except CONNECTION_ERRORS as exc:
                await asyncio.sleep(self.outage.failed(exc))
                continue
            for raw in _popped(popped):
                self.on_reply(raw)

    async def close(self) -> None:
        """Stop the task (a reply popped but not yet dispatched is dropped)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None


class ThreadReplyReader:
    """A daemon thread popping ``key`` and calling ``on_reply(raw bytes)`` for each element.

    Args: as :class:`AsyncReplyReader`, with a blocking-IO client. :meth:`close` wakes the
    thread by pushing :data:`WAKE_UP` to the list, so it ends at once rather than after a block.
    """

    def __init__(
        self, client: redis.Redis, key: str, on_reply: Callable[[bytes], None], what: str
    ) -> None:
        self.client = client
        self.key = key
        self.on_reply = on_reply
        self.outage = Outage(logger, what)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def ensure_started(self) -> None:
        """Start the thread unless it runs (thread-safe)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="busclient-replies", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                popped = self.client.blmpop(
                    REPLY_BLOCK_S, 1, self.key, direction="LEFT", count=POP_COUNT
                )
                self.outage.recovered()
            except CONNECTION_ERRORS as exc:
                self._stopping.wait(self.outage.failed(exc))
                continue
            for raw in _popped(popped):
                if raw != WAKE_UP:
                    self.on_reply(raw)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread, waiting up to ``timeout_s`` seconds for it to end."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(self.key, WAKE_UP)
                pipe.pexpire(self.key, int(REPLY_BLOCK_S * 1000))
                pipe.execute()
        except CONNECTION_ERRORS:
            pass  # Redis is gone: the thread ends after its back-off
        thread.join(timeout_s)
