"""A bus peer: a program that joins the bus and receives flow starts (design.md, "Peers").

::

    def on_flow_start(start: FlowStart) -> int | tuple[int, str]:
        launch(start.project, start.flow, start.params)
        return 1, "started"                     # ack 1: started; any other value: an error code

    peer = BusPeer(3, 7, on_flow_start, url="redis://127.0.0.1:6379/0")
    peer.run()                                  # or peer.start() for a background thread

Its loop, on one Redis connection:

* ``ZADD sbusr:peers <epoch ms> "3:7"`` every ``heartbeat_ms`` (the server holds a peer live
  while its heartbeat is younger than its ``peer_ttl_ms``, default 15000);
* ``XREAD COUNT 16 BLOCK <ms> STREAMS sbusr:peer:3:7 <last id>``, starting after the newest
  entry present at start (commands sent to an earlier life of the peer are not replayed);
* for each ``type = flow.start`` entry: decode ``data``, call ``on_flow_start``, then
  ``RPUSH <reply_to> {"invoke_id", "ack", "msg"}`` and ``PEXPIRE <reply_to> ack_ttl_ms``;
* at stop: ``ZREM sbusr:peers "3:7"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from busclient._backoff import Outage
from busclient._connection import CONNECTION_ERRORS, sync_redis
from busclient._streams import Fields, as_text, stream_entries
from wire.codec import decode_strict, encode_compact
from wire.keys import (
    DEFAULT_PREFIX,
    FIELD_DATA,
    FIELD_REPLY_TO,
    FIELD_TYPE,
    FLOW_START,
    BusKeys,
)
from wire.redact import redact_url

__all__ = ["BusPeer", "FlowStart", "OnFlowStart", "ACK_FAILED"]

logger = logging.getLogger(__name__)

#: The ack sent when the callback raised or the command was malformed.
ACK_FAILED = -1
#: Longest XREAD block, seconds (also the longest wait of :meth:`BusPeer.stop`).
MAX_BLOCK_S = 1.0


@dataclasses.dataclass(frozen=True)
class FlowStart:
    """One ``flow.start`` command, as the peer's callback receives it.

    Attributes:
        invoke_id: the server's id of this start (echoed in the ack).
        project: the project name.
        flow: the flow name.
        params: the flow's params (any JSON value, None when absent).
        entry_id: the stream entry id it came in.
    """

    invoke_id: str
    project: str
    flow: str
    params: Any
    entry_id: str


#: ``on_flow_start(start)`` returns the ack: an int, or ``(ack, msg)``; raising sends ack -1.
OnFlowStart = Callable[[FlowStart], "int | tuple[int, str]"]


class BusPeer:
    """Join the bus as peer ``<unit>:<client>`` and hand flow starts to ``on_flow_start``.

    Args:
        unit: the peer's unit id (``server`` of ``POST /api/flow``), an integer.
        client: the peer's client id (``process`` of ``POST /api/flow``), an integer.
        on_flow_start: the callback, see :data:`OnFlowStart`; runs in the peer's loop, so a
            slow callback delays heartbeats (keep it short or hand the work off).
        url: Redis URL.
        prefix: the bus key prefix.
        heartbeat_ms: heartbeat period, milliseconds (keep it well under the server's
            ``peer_ttl_ms``).
        ack_ttl_ms: life of the reply list after the ack is pushed, milliseconds.
    """

    def __init__(
        self,
        unit: int,
        client: int,
        on_flow_start: OnFlowStart,
        *,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        heartbeat_ms: int = 5000,
        ack_ttl_ms: int = 10000,
    ) -> None:
        self.unit = int(unit)
        self.client_id = int(client)
        self.on_flow_start = on_flow_start
        self.url = url
        self.keys = BusKeys(prefix)
        self.member = BusKeys.peer_member(self.unit, self.client_id)
        self.stream = self.keys.peer_stream(self.unit, self.client_id)
        self.heartbeat_ms = heartbeat_ms
        self.ack_ttl_ms = ack_ttl_ms
        self.redis = sync_redis(url, MAX_BLOCK_S)
        self.outage = Outage(logger, f"bus peer {self.member}")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BusPeer({self.unit}, {self.client_id}, url={redact_url(self.url)!r})"

    def start(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread; returns it."""
        self._thread = threading.Thread(
            target=self.run, name="bus-peer-" + self.member, daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout_s: float = 5.0) -> None:
        """Leave the bus: end the loop (within about a second) and remove the heartbeat."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def heartbeat(self) -> None:
        """``ZADD sbusr:peers <now epoch ms> "<unit>:<client>"``."""
        self.redis.zadd(self.keys.peers, {self.member: int(time.time() * 1000)})

    def run(self) -> None:
        """Heartbeat and serve flow starts until :meth:`stop`; Redis outages are waited out."""
        last_id: str | None = None
        next_beat = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if last_id is None:
                        newest = self.redis.xrevrange(self.stream, count=1)
                        last_id = as_text(newest[0][0] or "0-0") if newest else "0-0"
                    if time.monotonic() >= next_beat:
                        self.heartbeat()
                        next_beat = time.monotonic() + self.heartbeat_ms / 1000.0
                    block_s = min(MAX_BLOCK_S, max(0.001, next_beat - time.monotonic()))
                    entries = stream_entries(
                        self.redis.xread(
                            {self.stream: last_id}, count=16, block=int(block_s * 1000)
                        )
                    )
                    self.outage.recovered()
                except CONNECTION_ERRORS as exc:
                    self._stopping.wait(self.outage.failed(exc))
                    continue
                for last_id, fields in entries:
                    self._serve(last_id, fields)
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                self.redis.zrem(self.keys.peers, self.member)
            self.redis.close()

    def _serve(self, entry_id: str, fields: Fields) -> None:
        kind = fields.get(FIELD_TYPE.encode(), b"").decode(errors="replace")
        reply_to = fields.get(FIELD_REPLY_TO.encode())
        if kind != FLOW_START:
            logger.debug("peer %s: ignored entry %s of type %r", self.member, entry_id, kind)
            return
        invoke_id = None
        try:
            data = decode_strict(fields.get(FIELD_DATA.encode(), b""))
            invoke_id = data["invoke_id"]
            start = FlowStart(
                invoke_id, data["project"], data["flow"], data.get("params"), entry_id
            )
        except (ValueError, RecursionError, KeyError, TypeError) as exc:
            logger.warning("peer %s: malformed flow.start %s: %s", self.member, entry_id, exc)
            ack, msg = ACK_FAILED, f"malformed flow.start: {exc}"
        else:
            ack, msg = self._ack_of(start)
        if not reply_to:
            return
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(reply_to, encode_compact({"invoke_id": invoke_id, "ack": ack, "msg": msg}))
            pipe.pexpire(reply_to, self.ack_ttl_ms)
            pipe.execute()
        except CONNECTION_ERRORS as exc:  # the server times the start out (504)
            logger.warning("peer %s: ack of %s lost: %s", self.member, invoke_id, exc)

    def _ack_of(self, start: FlowStart) -> tuple[Any, str]:
        try:
            outcome = self.on_flow_start(start)
        except Exception as exc:  # the user's callback: its failure becomes the ack
            logger.exception("peer %s: on_flow_start failed for %s", self.member, start.invoke_id)
            return ACK_FAILED, f"{type(exc).__name__}: {exc}"
        if isinstance(outcome, tuple):
            return outcome[0], str(outcome[1]) if len(outcome) > 1 else ""
        return outcome, ""
