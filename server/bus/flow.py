"""Flow start: ask one live bus peer to start a call flow, and wait for its ack.

design.md, "Message bus" and "REST helpers" (``POST /api/flow``). One start, top to bottom::

    ZREMRANGEBYSCORE sbusr:peers -inf <now_ms - peer_ttl_ms>     forget dead peers
    ZRANGE sbusr:peers <now_ms - peer_ttl_ms> +inf BYSCORE       live peers "<unit>:<client>"
    pick one at random among those matching unit/client          none: NoLivePeer (404)
    XADD sbusr:peer:<unit>:<client> MAXLEN ~ 1000 * type flow.start
         data {"invoke_id","project","flow","params"} reply_to sbusr:reply:<this server>
    PEXPIRE sbusr:peer:<unit>:<client> <ack timeout + peer_ttl_ms>
    wait for {"invoke_id","ack","msg"} on the reply list          ack != 1: FlowRejected (502)
                                                                  none in time: FlowAckTimeout (504)

Acks of every flow start of this server arrive on one reply list, popped by one
:class:`~busclient.AsyncReplyReader` and matched by ``invoke_id`` (one Redis
connection for any number of concurrent starts). A start that times out or whose HTTP
client went away removes its waiter at once; a late ack is popped and dropped. The peer
streams are capped (``MAXLEN ~``) and expire when no start was sent for a while, so peers
that never read leave nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

import redis.asyncio
import redis.exceptions

from busclient import CONNECTION_ERRORS, AsyncReplyReader, Outage
from server.bus.errors import BusUnreachable, FlowAckTimeout, FlowError, FlowRejected, NoLivePeer
from wire.codec import decode_strict, encode_compact
from wire.keys import FIELD_DATA, FIELD_REPLY_TO, FIELD_TYPE, FLOW_START, BusKeys

__all__ = [
    "FlowStarter",
    "FlowError",
    "NoLivePeer",
    "FlowRejected",
    "FlowAckTimeout",
    "BusUnreachable",
    "PEER_STREAM_MAXLEN",
    "ACK_STARTED",
]

logger = logging.getLogger(__name__)

#: Approximate cap of a peer's command stream, entries.
PEER_STREAM_MAXLEN = 1000
#: The ack value that means "the flow started".
ACK_STARTED = 1


def _parse_member(member: bytes | str) -> tuple[int, int] | None:
    text = member.decode() if isinstance(member, bytes) else member
    unit, _, client = text.partition(":")
    try:
        return int(unit), int(client)
    except ValueError:
        return None


class FlowStarter:
    """Start flows on live peers (see the module doc).

    Args:
        client: an asyncio Redis client for commands.
        reader_client: an asyncio Redis client for the blocking ack reader.
        keys: the bus key names.
        reply_token: names this server's ack list (``sbusr:reply:<token>``).
        peer_ttl_ms: a peer is live while its heartbeat is younger, milliseconds.
        ack_timeout_s: how long to wait for an ack, seconds.
        outage: the bus's shared outage tracker.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        reader_client: redis.asyncio.Redis,
        keys: BusKeys,
        reply_token: str,
        peer_ttl_ms: int,
        ack_timeout_s: float,
        outage: Outage,
    ) -> None:
        self.client = client
        self.keys = keys
        self.reply_key = keys.reply(reply_token)
        self.peer_ttl_ms = peer_ttl_ms
        self.ack_timeout_s = ack_timeout_s
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader = AsyncReplyReader(
            reader_client, self.reply_key, self._on_ack, "bus flow acks", outage
        )

    async def close(self) -> None:
        """Stop the ack reader."""
        await self.reader.close()

    async def live_peers(self) -> list[tuple[int, int]]:
        """``[(unit, client), ...]`` of the peers whose heartbeat is younger than peer_ttl_ms.

        Raises:
            BusUnreachable: Redis could not be reached.
        """
        oldest_ms = int(time.time() * 1000) - self.peer_ttl_ms
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(self.keys.peers, "-inf", f"({oldest_ms}")
            pipe.zrangebyscore(self.keys.peers, oldest_ms, "+inf")
            _, members = await pipe.execute()
        except CONNECTION_ERRORS as exc:
            raise BusUnreachable(f"message bus unreachable: {exc}") from exc
        return [peer for peer in map(_parse_member, members) if peer is not None]

    async def start(
        self,
        project: str,
        flow: str,
        params: Any = None,
        unit: int | None = None,
        client: int | None = None,
    ) -> dict[str, Any]:
        """Start ``flow`` of ``project`` on a live peer matching ``unit``/``client`` (None: any).

        Returns:
            ``{"invoke_id": str, "peer": "<unit>:<client>", "ack": 1, "msg": str}``.

        Raises:
            NoLivePeer: no live peer matches.
            FlowRejected: the peer answered ack != 1.
            FlowAckTimeout: no ack within ``ack_timeout_s``.
            BusUnreachable: Redis could not be reached.
        """
        candidates = [
            (u, c)
            for u, c in await self.live_peers()
            if (unit is None or u == unit) and (client is None or c == client)
        ]
        if not candidates:
            wanted = ", ".join(
                "{}={}".format(*pair)
                for pair in (("server", unit), ("process", client))
                if pair[1] is not None
            )
            raise NoLivePeer("no live peer" + (" matches " + wanted if wanted else " on the bus"))
        peer_unit, peer_client = random.choice(candidates)
        peer = BusKeys.peer_member(peer_unit, peer_client)
        invoke_id = uuid.uuid4().hex
        stream = self.keys.peer_stream(peer_unit, peer_client)
        data = encode_compact(
            {"invoke_id": invoke_id, "project": project, "flow": flow, "params": params}
        )
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[invoke_id] = future
        self.reader.ensure_started()
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(
                stream,
                {FIELD_TYPE: FLOW_START, FIELD_DATA: data, FIELD_REPLY_TO: self.reply_key},
                maxlen=PEER_STREAM_MAXLEN,
                approximate=True,
            )
            pipe.pexpire(stream, int(self.ack_timeout_s * 1000) + self.peer_ttl_ms)
            await pipe.execute()
            logger.info("flow start %s: %s/%s sent to peer %s", invoke_id, project, flow, peer)
            ack = await asyncio.wait_for(future, self.ack_timeout_s)
        except TimeoutError:
            raise FlowAckTimeout(invoke_id, peer, self.ack_timeout_s) from None
        except CONNECTION_ERRORS as exc:
            raise BusUnreachable(f"message bus unreachable: {exc}") from exc
        finally:
            self.waiters.pop(invoke_id, None)
        answer = {
            "invoke_id": invoke_id,
            "peer": peer,
            "ack": ack.get("ack"),
            "msg": ack.get("msg", ""),
        }
        if answer["ack"] != ACK_STARTED:
            raise FlowRejected(answer)
        return answer

    def _on_ack(self, raw: bytes) -> None:
        try:
            ack = decode_strict(raw)
        except (ValueError, RecursionError):
            ack = None
        invoke_id = ack.get("invoke_id") if isinstance(ack, dict) else None
        future = self.waiters.get(invoke_id) if isinstance(invoke_id, str) else None
        if future is None:
            logger.info("dropped a flow ack nobody waits for (late or malformed): %.200r", raw)
        elif not future.done():
            future.set_result(ack)
