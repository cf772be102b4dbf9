"""The server side of the message bus: request consumer and flow start (design.md, "Message bus").

:class:`Bus` is what ``server.main`` starts when ``SBUSR_REDIS_URL`` is set; it owns the
:class:`~server.bus.consumer.BusConsumer` (JSON-RPC over the request stream), the
:class:`~server.bus.flow.FlowStarter` (``POST /api/flow``) and the :class:`BusCounters`
(``Bus.counters``) that ``GET /metrics`` reads.
"""

from server.bus.counters import BusCounters
from server.bus.service import Bus

__all__ = ["Bus", "BusCounters"]
