"""Every Redis key name of sbusr, built from one prefix (design.md, "Message bus").

The server (consumer, flow start, job leases), the Python clients, :class:`~busclient.BusPeer`
and ``kit.lock`` all take their names from :class:`BusKeys`; nothing else spells a key. With
the default prefix ``sbusr`` (``SBUSR_BUS_PREFIX``)::

    sbusr:rpc                      stream of requests (consumer group ``sbusr``)
    sbusr:rpc:dead                 dead-letter stream
    sbusr:rpc:dead:replays         counter of dead letters put back on sbusr:rpc (all instances)
    sbusr:done:<entry id>          short-lived record "this entry was answered"
    sbusr:peers                    sorted set of peers, member "<unit>:<client>", score epoch ms
    sbusr:peer:<unit>:<client>     stream of commands for one peer (flow.start)
    sbusr:reply:<token>            reply list of one client instance (or of one server's flow
                                   starts)
    sbusr:job:<job id>:<epoch ms>  lease of one occurrence of a scheduled job
    sbusr:lock:<name>              a kit.lock lock
    sbusr:idempotency:<key>        claim, then stored response, of one ``Idempotency-Key``
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "BusKeys",
    "DEFAULT_PREFIX",
    "FLOW_START",
    "FIELD_DATA",
    "FIELD_IDEMPOTENCY_KEY",
    "FIELD_REPLAYED_FROM",
    "FIELD_REPLY_TO",
    "FIELD_TRACEPARENT",
    "FIELD_TRACESTATE",
    "FIELD_TYPE",
]

#: The default key prefix (``SBUSR_BUS_PREFIX``).
DEFAULT_PREFIX = "sbusr"

#: Entry fields (design.md): ``data`` the JSON text, ``reply_to`` a list key, ``type`` the command.
FIELD_DATA = "data"
FIELD_REPLY_TO = "reply_to"
FIELD_TYPE = "type"
#: Entry field (design.md, "Deadlines and idempotency"): the caller's idempotency key.
FIELD_IDEMPOTENCY_KEY = "idempotency_key"
#: Entry field of a replayed dead letter: the dead-letter entry id it was put back from.
FIELD_REPLAYED_FROM = "replayed_from"
#: Optional request entry fields: the caller's W3C trace context (traced with SBUSR_TRACING).
FIELD_TRACEPARENT = "traceparent"
FIELD_TRACESTATE = "tracestate"

#: ``type`` of a flow start entry on a peer's stream.
FLOW_START = "flow.start"


@dataclasses.dataclass(frozen=True)
class BusKeys:
    """The key names of one bus, derived from ``prefix``.

    Args:
        prefix: the key prefix, default ``sbusr`` (no spaces).

    Example: ``BusKeys("sbusr").peer_stream(3, 7)`` -> ``"sbusr:peer:3:7"``.
    """

    prefix: str = DEFAULT_PREFIX

    @property
    def requests(self) -> str:
        """The request stream, e.g. ``sbusr:rpc``."""
        return self.prefix + ":rpc"

    @property
    def group(self) -> str:
        """The consumer group of the servers on :attr:`requests`: the prefix itself, ``sbusr``."""
        return self.prefix

    @property
    def dead(self) -> str:
        """The dead-letter stream, e.g. ``sbusr:rpc:dead``."""
        return self.prefix + ":rpc:dead"

    @property
    def dead_replays(self) -> str:
        """The counter of dead letters replayed onto :attr:`requests`, e.g.
        ``sbusr:rpc:dead:replays``."""
        return self.prefix + ":rpc:dead:replays"

    def done(self, entry_id: str) -> str:
        """The "answered" record of a request entry, e.g. ``sbusr:done:1700000000000-0``."""
        return f"{self.prefix}:done:{entry_id}"

    @property
    def peers(self) -> str:
        """The sorted set of peer heartbeats, e.g. ``sbusr:peers``."""
        return self.prefix + ":peers"

    @staticmethod
    def peer_member(unit: int, client: int) -> str:
        """The member of a peer in :attr:`peers`: ``"<unit>:<client>"``."""
        return f"{unit}:{client}"

    def peer_stream(self, unit: int, client: int) -> str:
        """The command stream of one peer, e.g. ``sbusr:peer:3:7``."""
        return f"{self.prefix}:peer:{unit}:{client}"

    def reply(self, token: str) -> str:
        """A reply list owned by one client instance, e.g. ``sbusr:reply:5f0c...``."""
        return f"{self.prefix}:reply:{token}"

    def job_lease(self, job_id: str, run_time_ms: int) -> str:
        """The lease of one occurrence of a job, e.g. ``sbusr:job:cleanup:1767232800000``.

        Args:
            job_id: the job's id.
            run_time_ms: the occurrence's scheduled run time, milliseconds since the epoch.
        """
        return f"{self.prefix}:job:{job_id}:{run_time_ms}"

    def lock(self, name: str) -> str:
        """The key of the ``kit.lock`` lock ``name``, e.g. ``sbusr:lock:nightly``."""
        return f"{self.prefix}:lock:{name}"

    def idempotency(self, key: str) -> str:
        """The claim, then the stored response, of one idempotency key, e.g.
        ``sbusr:idempotency:order-4711``."""
        return f"{self.prefix}:idempotency:{key}"
