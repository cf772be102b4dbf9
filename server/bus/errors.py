"""The bus's errors that HTTP answers, and the dead-letter page bound: without Redis.

The REST layer (:mod:`server.http.errors`, :mod:`server.http.deadletters`) maps these to
HTTP statuses whether the bus is on or off; they live apart from the Redis code of
:mod:`server.bus.flow` and :mod:`server.bus.deadletters` (which raise them and re-export
them) so that a server without ``SBUSR_REDIS_URL`` never imports redis.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BusUnreachable",
    "DeadLetterNotFound",
    "FlowAckTimeout",
    "FlowError",
    "FlowRejected",
    "MAX_PAGE",
    "NoLivePeer",
]

#: Most dead letters one page holds.
MAX_PAGE = 500


class FlowError(Exception):
    """A flow start failed (root of the errors below)."""


class NoLivePeer(FlowError):
    """No live peer matches the requested unit/client (HTTP 404)."""


class FlowRejected(FlowError):
    """The peer answered with an ack other than 1 (HTTP 502). ``ack`` carries it all."""

    def __init__(self, ack: dict[str, Any]) -> None:
        super().__init__(
            "peer {} answered ack {!r}: {}".format(ack.get("peer"), ack.get("ack"), ack.get("msg"))
        )
        self.ack = ack


class FlowAckTimeout(FlowError):
    """No ack within the ack timeout (HTTP 504)."""

    def __init__(self, invoke_id: str, peer: str, timeout_s: float) -> None:
        super().__init__(f"peer {peer} did not ack flow start {invoke_id} within {timeout_s:.1f} s")
        self.invoke_id = invoke_id
        self.peer = peer


class BusUnreachable(FlowError):
    """Redis could not be reached (HTTP 503)."""


class DeadLetterNotFound(LookupError):
    """No dead letter has this entry id (HTTP 404).

    Attributes:
        entry_id: the id asked for.
    """

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no dead letter {entry_id}")
        self.entry_id = entry_id
