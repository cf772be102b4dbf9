"""The bus of one server instance: consumer, upkeep and flow starter over shared connections."""

from __future__ import annotations

import logging

from busclient import REPLY_BLOCK_S, Outage, async_redis
from executor.pool import Pool
from server.bus.consumer import READ_BLOCK_MS, BusConsumer
from server.bus.counters import BusCounters
from server.bus.deadletters import DeadLetters
from server.bus.flow import FlowStarter
from server.bus.reclaim import Maintenance
from server.idempotency import Idempotency, RedisIdempotencyStore
from server.jsonrpc import JsonRpcCore
from settings import Settings
from wire.keys import BusKeys
from wire.redact import redact_url

__all__ = ["Bus", "done_ttl_ms"]

logger = logging.getLogger(__name__)


def done_ttl_ms(settings: Settings) -> int:
    """Life of an entry's "answered" record, milliseconds: ``claim_idle_ms + 2 * rpc_timeout``.

    A copy of an entry running elsewhere finishes at most two call time limits (queue wait,
    then run) after it was claimed, so the record outlives every copy that could still reply.
    """
    return settings.claim_idle_ms + int(2000 * settings.rpc_timeout_s)


class Bus:
    """The message bus of one server instance (design.md, "Message bus").

    Args:
        settings: ``redis_url`` must be set; ``bus_prefix``, ``notify_ttl_ms``,
            ``claim_idle_ms``, ``max_deliveries``, ``peer_ttl_ms``, ``flow_ack_timeout_s``.
        pool: the process pool (its capacity bounds what is read).
        core: the JSON-RPC core.

    Attributes:
        counters: what the bus counts (:class:`~server.bus.counters.BusCounters`: entries
            read, reclaimed, dead-lettered, pending), read by ``GET /metrics``.
        idempotency: the idempotency rules over this Redis (:mod:`server.idempotency`), for the
            bus field ``idempotency_key`` and the HTTP header ``Idempotency-Key`` alike.
        deadletters: the dead-letter stream (``/api/deadletters``, its retention bound).

    Nothing connects before :meth:`start`; an unreachable Redis is no error: the loops log
    once and retry with back-off while HTTP keeps serving.
    """

    def __init__(self, settings: Settings, pool: Pool, core: JsonRpcCore) -> None:
        assert settings.redis_url, "the bus needs settings.redis_url"
        self.url = settings.redis_url
        self.keys = BusKeys(settings.bus_prefix)
        self.outage = Outage(logger, "message bus")
        self.counters = BusCounters()
        # retries=1: every command of the server is idempotent or safe to repeat (see async_redis)
        self.client = async_redis(self.url, READ_BLOCK_MS / 1000.0, retries=1)
        self.reader_client = async_redis(self.url, REPLY_BLOCK_S, retries=1)
        self.idempotency = Idempotency.for_settings(
            settings.idempotency_ttl_s,
            settings.rpc_timeout_s,
            RedisIdempotencyStore(self.client, self.keys),
        )
        self.consumer = BusConsumer(
            self.client,
            self.keys,
            pool,
            core,
            settings.notify_ttl_ms,
            done_ttl_ms(settings),
            self.outage,
            self.counters,
            self.idempotency,
            max_body_bytes=settings.max_body_bytes,
            reply_to_pattern=settings.bus_reply_to_pattern,
            dead_maxlen=settings.deadletter_max_entries,
        )
        self.deadletters = DeadLetters(
            self.client,
            self.keys,
            self.counters,
            settings.deadletter_max_entries,
            settings.deadletter_max_age_s,
        )
        self.maintenance = Maintenance(
            self.consumer,
            settings.claim_idle_ms,
            settings.max_deliveries,
            self.outage,
            self.counters,
            self.deadletters,
        )
        self.flow_client = async_redis(self.url)  # no retries: a flow.start must not be sent twice
        self.flows = FlowStarter(
            self.flow_client,
            self.reader_client,
            self.keys,
            self.consumer.name,
            settings.peer_ttl_ms,
            settings.flow_ack_timeout_s,
            self.outage,
        )

    async def start(self) -> None:
        """Start reading requests and the upkeep."""
        logger.info("message bus on %s, prefix %s", redact_url(self.url), self.keys.prefix)
        await self.consumer.start()
        self.maintenance.start()

    async def stop_reading(self) -> None:
        """Read and reclaim no more entries; held ones keep running (first step of a stop)."""
        self.maintenance.reclaiming = False
        await self.consumer.stop_reading()

    async def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for held entries to be answered, then disconnect."""
        await self.consumer.close(timeout_s)
        await self.maintenance.close()
        await self.flows.close()
        for client in (self.client, self.reader_client, self.flow_client):
            await client.aclose()
