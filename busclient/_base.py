"""What the blocking and the asyncio client share: names, their reply list, ids, checks."""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any

from busclient import _protocol as protocol
from wire.keys import BusKeys
from wire.redact import redact_url

__all__ = ["ClientBase", "DEFAULT_TIMEOUT_S", "DEFAULT_MAX_BATCH"]

#: Default time limit of a call, seconds (the server's default call time limit).
DEFAULT_TIMEOUT_S = 30.0
#: Largest batch sent (the server's default SBUSR_MAX_BATCH; its refusal would carry id null,
#: which no waiting call could be matched with).
DEFAULT_MAX_BATCH = 100


class ClientBase:
    """The parts of :class:`~busclient.BusClient` and :class:`~busclient.AsyncBusClient` that
    do no IO.

    Args:
        url: Redis URL (masked in ``repr``).
        prefix: the bus key prefix.
        max_batch: largest batch sent.
        send_deadline: send each call's ``deadline_ms``, from its time-out.

    Attributes:
        reply_key: this instance's reply list, ``<prefix>:reply:<random hex>``.
    """

    def __init__(self, url: str, prefix: str, max_batch: int, send_deadline: bool = True) -> None:
        self.url = url
        self.send_deadline = send_deadline
        self.keys = BusKeys(prefix)
        self.reply_key = self.keys.reply(uuid.uuid4().hex)
        self.max_batch = max_batch
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._waiters: dict[Any, Any] = {}  # request id -> future waiting for its reply

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r}, prefix={self.keys.prefix!r})"

    def _next_ids(self, count: int) -> list[int]:
        """``count`` fresh request ids (unique within this instance; thread-safe)."""
        with self._ids_lock:
            return [next(self._ids) for _ in range(count)]

    def _batch_ids(self, calls: list[tuple[str, Any]]) -> list[int]:
        """Ids for a batch. Raises ValueError when it holds more than ``max_batch`` calls."""
        if len(calls) > self.max_batch:
            raise ValueError(f"a batch of {len(calls)} calls is over max_batch={self.max_batch}")
        return self._next_ids(len(calls))

    def _deadline(self, timeout_s: float) -> int | None:
        """The ``deadline_ms`` of a call waited for ``timeout_s`` seconds; None when not sent."""
        return protocol.deadline_after(timeout_s) if self.send_deadline else None

    def _on_reply(self, raw: bytes) -> None:
        protocol.deliver(self._waiters, raw)
