"""The blocking bus client, safe to share between threads (design.md, "Message bus").

::

    with BusClient("redis://127.0.0.1:6379/0") as bus:
        bus.call("add", [1, 2], timeout_s=5)      # -> 3
        bus.notify("warnlog", ["hello"])           # no reply
        bus.batch([("echo", ["a"]), ("add", [1, 2])])

Each call sends ``XADD sbusr:rpc * data <json> reply_to <list>`` from the calling thread on a
bounded connection pool (``max_connections``); one reader thread pops the client's own reply
list (:class:`~busclient._reader.ThreadReplyReader`) and wakes the waiting thread by id. A
thousand threads calling at once thus share ``max_connections + 1`` Redis connections. A call
made inside a trace also carries ``traceparent`` (:mod:`busclient._trace_context`).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import redis.exceptions

from busclient import _protocol as protocol
from busclient._base import DEFAULT_MAX_BATCH, DEFAULT_TIMEOUT_S, ClientBase
from busclient._connection import send_error, sync_redis
from busclient._errors import BusTimeout
from busclient._reader import REPLY_BLOCK_S, ThreadReplyReader
from busclient._trace_context import current_trace_context
from wire.keys import DEFAULT_PREFIX

__all__ = ["BusClient", "DEFAULT_MAX_CONNECTIONS"]


#: Default bound of the connections that send requests.
DEFAULT_MAX_CONNECTIONS = 8


class BusClient(ClientBase):
    """Call JSON-RPC methods of sbusr servers over the bus, from blocking code.

    Args:
        url, prefix, max_batch: as for :class:`~busclient.AsyncBusClient`.
        max_connections: connections used to send requests; more concurrent senders wait.
        send_deadline: give each call and batch the deadline ``deadline_ms`` of its
            ``timeout_s`` (default), so that the server never starts it after this client
            stopped waiting (it is answered -32004 instead); False sends none.

    Thread-safe. Connections open on first use; :meth:`close` (or ``with``) releases them.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        send_deadline: bool = True,
    ) -> None:
        super().__init__(url, prefix, max_batch, send_deadline)
        self._redis = sync_redis(url, max_connections=max_connections)
        self._reader = ThreadReplyReader(
            sync_redis(url, REPLY_BLOCK_S), self.reply_key, self._on_reply, "bus client replies"
        )

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ public
    def call(self, method: str, params: Any = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        """Call ``method`` and return its result (any JSON value).

        Args:
            method: the method's dotted name, e.g. ``"greetings.greet"``.
            params: None, a list (by position) or a dict (by name).
            timeout_s: how long to wait for the reply, seconds.

        Raises:
            RpcError: the server answered with an error object (code, message, data).
            BusTimeout: no reply within ``timeout_s``. With ``send_deadline`` (the default)
                the request is not started after that; without, it may still run later.
            BusConnectionError: Redis could not be reached to send the request.
            TypeError, ValueError: ``params`` cannot be sent as JSON (see
                :func:`busclient._protocol.request_payload`); nothing was sent.
        """
        ids = self._next_ids(1)
        payload = protocol.request_payload(method, params, ids[0])
        return protocol.result(self._round_trip(payload, ids, timeout_s))

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification: the method runs, nothing is answered (JSON-RPC 2.0 §4.1).

        Raises:
            BusConnectionError: Redis could not be reached.
            TypeError, ValueError: as :meth:`call`.
        """
        self._send(protocol.request_payload(method, params, None), None)

    def batch(
        self, calls: list[tuple[str, Any]], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[Any]:
        """Send ``[(method, params), ...]`` as one batch (JSON-RPC 2.0 §6).

        Returns:
            One item per call, in order: its result, or an :class:`RpcError` instance (not
            raised) when that call failed.

        Raises:
            ValueError: no calls, or more than ``max_batch``.
            BusTimeout, BusConnectionError, TypeError, ValueError: as :meth:`call`.
        """
        ids = self._batch_ids(calls)
        reply = self._round_trip(protocol.batch_payload(calls, ids), ids, timeout_s)
        return protocol.batch_outcomes(ids, reply)

    def close(self) -> None:
        """Stop the reader thread and close the connections (idempotent)."""
        self._reader.close()
        self._reader.client.close()
        self._redis.close()

    # ------------------------------------------------------------------ internals
    def _round_trip(self, payload: bytes, ids: list[int], timeout_s: float) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        for request_id in ids:
            self._waiters[request_id] = future
        self._reader.ensure_started()
        try:
            self._send(payload, self.reply_key, self._deadline(timeout_s))
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise BusTimeout(f"no reply to request {ids[0]} within {timeout_s:.3f} s") from None
        finally:
            for request_id in ids:
                self._waiters.pop(request_id, None)

    def _send(self, payload: bytes, reply_key: str | None, deadline_ms: int | None = None) -> None:
        try:
            fields = protocol.entry_fields(payload, reply_key, deadline_ms, current_trace_context())
            self._redis.xadd(self.keys.requests, fields)
        except redis.exceptions.RedisError as exc:
            raise send_error(self.url, exc) from exc
