"""``Idempotency-Key`` on ``POST /rpc`` and ``POST /`` (the rules: :mod:`server.idempotency`).

The key covers the whole request body: a batch is run once as a whole, and a repeat gets the
whole batch response back. Each request of a batch cannot carry a key of its own over HTTP (the
bus field ``idempotency_key`` names one entry, which may hold a batch too).

==============================================  ===========================================
case                                            answer
==============================================  ===========================================
first request with the key                      as without a key; the response is stored
                                                (not a 503 busy, a 500, or one with -32004)
repeat, same body, first answered               the stored status and body, with
                                                ``Idempotent-Replayed: true``
repeat, same body, first still running          waits, then as the line above
same key, another body                          422 JSON, ``details`` ``{"idempotency_key"}``
key empty, over 255 characters, not ASCII       400 JSON
the store (Redis) cannot be reached             503 JSON (nothing ran)
==============================================  ===========================================
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.http.errors import RestError
from server.idempotency import (
    Answer,
    Idempotency,
    InvalidKey,
    KeyReused,
    StoreUnavailable,
    all_run,
    parse_key,
)
from server.limit_counters import counters

if TYPE_CHECKING:
    from server.http.rpc import RpcDelegate

__all__ = ["HttpIdempotency", "IDEMPOTENCY_KEY_HEADER", "REPLAYED_HEADER"]

logger = logging.getLogger(__name__)

#: The request header naming a request (IETF httpapi draft).
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
#: The response header of a stored response sent again.
REPLAYED_HEADER = "Idempotent-Replayed"

#: Statuses whose responses are stored (a 503 busy or a 500 ran nothing, or not fully).
_STORED_STATUSES = frozenset((200, 204))
#: The answer of a request whose response was never written.
_NOT_ANSWERED = Answer(0, b"", storable=False)


class HttpIdempotency:
    """Answers the ``POST /rpc`` requests that carry ``Idempotency-Key`` (module doc's table).

    Args:
        idempotency: the rules over the server's store.
    """

    def __init__(self, idempotency: Idempotency) -> None:
        self.idempotency = idempotency

    async def answer(self, delegate: RpcDelegate, body: bytes) -> None:
        """Answer ``body`` (complete) for ``delegate``: run it once through the delegate's own
        path (:meth:`RpcDelegate._answer`), or send the stored response, or refuse."""
        try:
            key = parse_key(delegate.request.headers[IDEMPOTENCY_KEY_HEADER])
        except InvalidKey as exc:
            delegate._refuse(RestError(400, str(exc)))
            return
        written: list[Answer] = []

        def record(status: int, response: bytes | None) -> None:
            text = response or b""
            written.append(Answer(status, text, status in _STORED_STATUSES and all_run(text)))

        async def call() -> Answer:
            delegate.on_response = record
            try:
                await delegate._answer(body)
            finally:
                delegate.on_response = None
            # nothing written: the client left before its answer; store nothing, free the key
            return written[0] if written else _NOT_ANSWERED

        try:
            outcome = await self.idempotency.run(key, body, call)
        except KeyReused as exc:
            counters.count_refusal("http")
            delegate._refuse(RestError(422, str(exc), details={"idempotency_key": key}))
            return
        except StoreUnavailable as exc:
            if written:  # answered; only storing its response failed
                logger.error("idempotency: the response of %r was not stored: %s", key, exc)
            else:
                logger.error("idempotency: %s", exc)
                delegate._refuse(RestError(503, "the idempotency store cannot be reached"))
            return
        if outcome.replayed:
            counters.count_replay("http")
            stored = outcome.answer
            delegate._respond(stored.status, stored.body or None, (), [(REPLAYED_HEADER, "true")])
