"""The server side of the message bus: request consumer and flow start (design.md, "Message bus").

:class:`Bus` is what ``server.main`` starts when ``SBUSR_REDIS_URL`` is set; it owns the
:class:`~server.bus.consumer.BusConsumer` (JSON-RPC over the request stream), the
:class:`~server.bus.flow.FlowStarter` (``POST /api/flow``) and the :class:`BusCounters`
(``Bus.counters``) that ``GET /metrics`` reads.

Importing the package loads no Redis code: ``Bus`` and ``BusCounters`` are imported on first
access, so the HTTP layer can take :mod:`server.bus.errors` on a server whose bus is off.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.bus.counters import BusCounters
    from server.bus.service import Bus

__all__ = ["Bus", "BusCounters"]

#: name -> the module that defines it
_HOMES = {"Bus": "server.bus.service", "BusCounters": "server.bus.counters"}


def __getattr__(name: str) -> Any:
    """Import ``Bus`` or ``BusCounters`` on first access (PEP 562).

    Raises:
        AttributeError: any other name.
    """
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # imported once: later accesses find it here
    return value
