"""The asyncio bus client: JSON-RPC calls over the Redis Streams bus (design.md, "Message bus").

::

    async with AsyncBusClient("redis://127.0.0.1:6379/0") as bus:
        await bus.call("add", [1, 2])                        # -> 3
        await bus.notify("warnlog", ["hello"])               # no reply
        await bus.batch([("echo", ["a"]), ("nope", None)])   # -> ["a", RpcError(-32601)]

Requests are sent by one writer task: everything queued since its last round trip goes out
in one round trip, as one XADD_MANY script call (:mod:`busclient._script`) that adds each
entry as ``XADD sbusr:rpc * data <json> reply_to <list> deadline_ms <epoch ms>`` (and the
caller's ``traceparent`` / ``tracestate``, taken when the call is made: see
:mod:`busclient._trace_context`). Replies
are read by one :class:`~busclient._reader.AsyncReplyReader` on the client's own list. So a
client holds two Redis connections whatever the number of concurrent calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions

from busclient import _protocol as protocol
from busclient._base import DEFAULT_MAX_BATCH, DEFAULT_TIMEOUT_S, ClientBase
from busclient._connection import async_redis, send_error
from busclient._errors import BusTimeout
from busclient._reader import REPLY_BLOCK_S, AsyncReplyReader
from busclient._script import XADD_MANY
from busclient._tasks import Outbox, cancel_and_wait
from busclient._trace_context import TraceContext, current_trace_context
from wire.keys import DEFAULT_PREFIX

__all__ = ["AsyncBusClient"]

#: A request waiting for the writer: payload, reply list (None: a notification), deadline
#: (epoch ms), the caller's trace context, the future of its sending (or of its reply).
_Outgoing = tuple[bytes, str | None, int | None, TraceContext | None, asyncio.Future[Any]]
#: The same, grouped by reply list: payload, deadline, trace context, future.
_Entry = tuple[bytes, int | None, TraceContext | None, asyncio.Future[Any]]


class AsyncBusClient(ClientBase):
    """Call JSON-RPC methods of sbusr servers over the bus, from asyncio code.

    Args:
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0`` (its password is never shown).
        prefix: the servers' ``SBUSR_BUS_PREFIX``.
        max_batch: largest batch :meth:`batch` sends (<= the servers' SBUSR_MAX_BATCH).
        send_deadline: as for :class:`~busclient.BusClient`: each call and batch carries the
            ``deadline_ms`` of its ``timeout_s`` (default), so it never starts after this
            client stopped waiting; False sends none.

    Use from one event loop. The connections open on first use; :meth:`close` (or
    ``async with``) releases them.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_batch: int = DEFAULT_MAX_BATCH,
        send_deadline: bool = True,
    ) -> None:
        super().__init__(url, prefix, max_batch, send_deadline)
        self._redis = async_redis(url)
        self._reader = AsyncReplyReader(
            async_redis(url, REPLY_BLOCK_S), self.reply_key, self._on_reply, "bus client replies"
        )
        self._outbox: Outbox[_Outgoing] = Outbox()
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncBusClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ public
    async def call(
        self, method: str, params: Any = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Any:
        """Call ``method`` and return its result; as :meth:`busclient.BusClient.call`.

        Raises:
            RpcError, BusTimeout, BusConnectionError, TypeError, ValueError: as
                :meth:`busclient.BusClient.call`.
        """
        request_id = self._next_ids(1)[0]
        payload = protocol.request_payload(method, params, request_id)
        return protocol.result(await self._round_trip(payload, [request_id], timeout_s))

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification: the method runs, nothing is answered (JSON-RPC 2.0 §4.1).

        Returns once Redis has stored the entry.

        Raises:
            BusConnectionError: Redis could not be reached.
            TypeError, ValueError: as :meth:`busclient.BusClient.call`.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(protocol.request_payload(method, params, None), None, None, future)
        await future

    async def batch(
        self, calls: list[tuple[str, Any]], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[Any]:
        """Send ``[(method, params), ...]`` as one batch; as :meth:`busclient.BusClient.batch`.

        Returns:
            One item per call, in order: its result, or an RpcError instance (not raised).
        """
        ids = self._batch_ids(calls)
        reply = await self._round_trip(protocol.batch_payload(calls, ids), ids, timeout_s)
        return protocol.batch_outcomes(ids, reply)

    async def close(self) -> None:
        """Stop the reader and the writer and close the connections (idempotent)."""
        await self._reader.close()
        if self._writer is not None:
            await cancel_and_wait(self._writer)
            self._writer = None
        await self._redis.aclose()
        await self._reader.client.aclose()

    # ------------------------------------------------------------------ internals
    async def _round_trip(self, payload: bytes, ids: list[int], timeout_s: float) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        for request_id in ids:
            self._waiters[request_id] = future
        self._reader.ensure_started()
        timer = loop.call_later(timeout_s, _expire, future, ids[0], timeout_s)
        try:
            self._enqueue(payload, self.reply_key, self._deadline(timeout_s), future)
            return await future
        finally:
            timer.cancel()
            for request_id in ids:
                self._waiters.pop(request_id, None)

    def _enqueue(
        self,
        payload: bytes,
        reply_key: str | None,
        deadline_ms: int | None,
        future: asyncio.Future[Any],
    ) -> None:
        self._outbox.put((payload, reply_key, deadline_ms, current_trace_context(), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Send what is queued, in one round trip: one XADD_MANY script call per reply list
        (requests, notifications), pipelined (the writer task's loop)."""
        stream = self.keys.requests
        while True:
            items = await self._outbox.take()
            groups: dict[str, list[_Entry]] = {}
            for payload, reply_key, deadline_ms, trace_context, future in items:
                groups.setdefault(reply_key or "", []).append(
                    (payload, deadline_ms, trace_context, future)
                )
            try:
                outcomes = await self._add_entries(stream, groups)
                if any(isinstance(outcome, redis.exceptions.NoScriptError) for outcome in outcomes):
                    await XADD_MANY.load(self._redis)  # Redis lost the script; nothing was added
                    outcomes = await self._add_entries(stream, groups)
            except redis.exceptions.RedisError as exc:
                outcomes = [exc] * len(groups)
            for (reply_key, members), outcome in zip(groups.items(), outcomes, strict=False):
                for _, _, _, future in members:
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(send_error(self.url, outcome))
                    elif not reply_key:
                        future.set_result(
                            None
                        )  # a notification: stored is all there is to wait for

    async def _add_entries(self, stream: str, groups: dict[str, list[_Entry]]) -> list[Any]:
        """One XADD_MANY per reply list, pipelined; returns each call's outcome or exception."""
        pipe = self._redis.pipeline(transaction=False)
        for reply_key, members in groups.items():
            arguments: list[bytes | int | str] = []
            for payload, deadline_ms, trace_context, _ in members:
                arguments += (payload, "" if deadline_ms is None else deadline_ms)
                arguments += trace_context or ("", "")
            pipe.evalsha(XADD_MANY.sha, 1, stream, reply_key, *arguments)
        return await pipe.execute(raise_on_error=False)


def _expire(future: asyncio.Future[Any], request_id: int, timeout_s: float) -> None:
    if not future.done():
        future.set_exception(
            BusTimeout(f"no reply to request {request_id} within {timeout_s:.3f} s")
        )
