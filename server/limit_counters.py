"""What the call semantics and the HTTP limits count, for ``GET /metrics`` to read at scrape time.

One :data:`counters` per server process (a process serves one server), updated on the event
loop's thread by plain integer additions where each event happens, and turned into
``sbusr_*`` samples by :mod:`server.metrics` only when scraped; nothing here knows about
Prometheus. Who counts what:

======================================  ====================================================
counter                                 counted by
======================================  ====================================================
``calls_withdrawn[transport]``          :mod:`server.jsonrpc`: calls withdrawn before they
                                        started because their caller left (HTTP: the
                                        client disconnected)
``idempotent_replays[transport]``       :mod:`server.http.idempotent`,
                                        :mod:`server.bus.idempotent`: stored responses sent
                                        again without running
``idempotent_refusals[transport]``      the same: a key reused with another body (HTTP
                                        422, bus -32600)
``connections_refused``                 :mod:`server.http.connections`: closed at once at
                                        the ceiling (no idle connection to evict)
``connections_evicted``                 idle connections closed to make room at the ceiling
``connections_closed[reason]``          connections the server closed: :data:`CLOSE_REASONS`
``accept_errors``                       accepts that failed (EMFILE, ENFILE, ...)
======================================  ====================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["CLOSE_REASONS", "LimitCounters", "counters", "transport_of"]

#: Why the server closed a connection: its first request's headers, the next request (keep-
#: alive), or a body did not arrive in time; its output stalled past the write time-out, or
#: stalled over the unsent output ceiling.
CLOSE_REASONS = (
    "header_timeout",
    "keepalive_timeout",
    "body_timeout",
    "write_timeout",
    "unsent_output",
)

#: The transport label of a call whose context names none.
_NO_TRANSPORT = "(none)"


def transport_of(context: dict[str, Any] | None) -> str:
    """The transport of a call's context (``http``, ``bus``, ``job``), ``(none)`` without."""
    return (context.get("transport") if context else None) or _NO_TRANSPORT


def _zeros(names: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(names, 0)


@dataclasses.dataclass
class LimitCounters:
    """Counts since the server started (the module doc says who counts what).

    Attributes:
        calls_withdrawn: transport -> calls withdrawn before they started (caller left).
        idempotent_replays: transport -> stored responses sent again (nothing ran).
        idempotent_refusals: transport -> requests refused: key reused with another body.
        connections_refused: HTTP connections closed at once at the ceiling.
        connections_evicted: idle HTTP connections closed to make room at the ceiling.
        connections_closed: reason (:data:`CLOSE_REASONS`) -> HTTP connections closed.
        accept_errors: failed accepts of new HTTP connections.
    """

    calls_withdrawn: dict[str, int] = dataclasses.field(default_factory=lambda: _zeros(("http",)))
    idempotent_replays: dict[str, int] = dataclasses.field(
        default_factory=lambda: _zeros(("http", "bus"))
    )
    idempotent_refusals: dict[str, int] = dataclasses.field(
        default_factory=lambda: _zeros(("http", "bus"))
    )
    connections_refused: int = 0
    connections_evicted: int = 0
    connections_closed: dict[str, int] = dataclasses.field(
        default_factory=lambda: _zeros(CLOSE_REASONS)
    )
    accept_errors: int = 0

    def count_withdrawn(self, context: dict[str, Any] | None, withdrawn: int) -> None:
        """Count ``withdrawn`` calls of a caller that left (``context``: the calls')."""
        if withdrawn:
            transport = transport_of(context)
            self.calls_withdrawn[transport] = self.calls_withdrawn.get(transport, 0) + withdrawn

    def count_replay(self, transport: str) -> None:
        """Count one stored response sent again over ``transport``."""
        self.idempotent_replays[transport] = self.idempotent_replays.get(transport, 0) + 1

    def count_refusal(self, transport: str) -> None:
        """Count one request refused over ``transport``: its key was used with another body."""
        self.idempotent_refusals[transport] = self.idempotent_refusals.get(transport, 0) + 1

    def count_closed(self, reason: str) -> None:
        """Count one HTTP connection the server closed for ``reason`` (:data:`CLOSE_REASONS`)."""
        self.connections_closed[reason] = self.connections_closed.get(reason, 0) + 1


#: The counters of this server process.
counters = LimitCounters()
