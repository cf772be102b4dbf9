"""What the bus of one server instance counts, for ``GET /metrics`` to read at scrape time."""

from __future__ import annotations

import dataclasses

__all__ = ["BusCounters"]


@dataclasses.dataclass
class BusCounters:
    """Counts of one :class:`~server.bus.Bus`, plain ints updated by its loops (one event loop).

    ``server.metrics`` turns them into ``sbusr_bus_*`` samples when scraped; nothing here
    knows about Prometheus.

    Attributes:
        entries_read: request entries read with ``XREADGROUP`` since start (a counter).
        entries_reclaimed: entries of other consumers claimed with ``XAUTOCLAIM`` (a counter).
        entries_dead_lettered: entries moved to the dead-letter stream (a counter).
        dead_letters_replayed: dead letters this instance put back on the request stream
            (``POST /api/deadletters/{entry id}/replay``; a counter).
        pending: entries of the group delivered and not acked yet, as ``XPENDING`` last told
            the upkeep (a gauge; 0 before the first look).
    """

    entries_read: int = 0
    entries_reclaimed: int = 0
    entries_dead_lettered: int = 0
    dead_letters_replayed: int = 0
    pending: int = 0
