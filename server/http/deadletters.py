"""REST routes of the dead letters (design.md, "REST helpers"; :mod:`server.bus.deadletters`).

=======  ==========================================  ==========================================
GET      /api/deadletters?limit=&before=             200 ``{"deadletters": [...], "total",
                                                     "replayed_total", "next_before"}``, newest
                                                     first; ``limit`` 1-500 (default 50),
                                                     ``before`` an entry id (exclusive); 400 a
                                                     bad query value
GET      /api/deadletters/{entry id}                 200 one dead letter; 404
POST     /api/deadletters/{entry id}/replay          200 ``{"entry_id", "replayed_as",
                                                     "deadline_ms"}``; body empty or
                                                     ``{"timeout_ms": N}`` (a fresh deadline N
                                                     ms from now); 400 a bad body; 404
DELETE   /api/deadletters/{entry id}                 200 ``{"entry_id", "dropped": true}``; 404
=======  ==========================================  ==========================================

A dead letter: ``{"entry_id", "request_entry_id", "reason", "deliveries", "method", "methods",
"age_s", "reply_to", "data", "replayed_from"}`` (:func:`server.bus.deadletters.describe`).
Every route answers 503 when the bus is off (no SBUSR_REDIS_URL) or Redis cannot be reached.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from server.bus.errors import MAX_PAGE, DeadLetterNotFound
from server.http.base import BaseHandler
from server.http.errors import RestError
from wire.schema import LazyValidator, error_list

if TYPE_CHECKING:
    from server.bus.deadletters import DeadLetters

__all__ = [
    "DEFAULT_PAGE",
    "ENTRY_ID_PATTERN",
    "REPLAY_SCHEMA",
    "DeadLetterActionHandler",
    "DeadLetterHandler",
    "DeadLettersHandler",
]

#: A stream entry id in a route: the one group of the pattern.
ENTRY_ID_PATTERN = r"([0-9]{1,20}-[0-9]{1,20})"
#: Dead letters per page when ``limit`` is not given.
DEFAULT_PAGE = 50

#: JSON Schema of the replay body (an empty body is ``{}``).
REPLAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"timeout_ms": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}

_REPLAY_VALIDATOR = LazyValidator(REPLAY_SCHEMA)
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN + r"\Z")


def _bus_errors() -> tuple[type[BaseException], ...]:
    """The Redis errors of a bus that cannot be used (connection lost, a refused command).

    Imported when first needed: only a server with the bus on gets past ``prepare``, and it
    has loaded redis already; one with the bus off never does.
    """
    from busclient import UNUSABLE_ERRORS

    return UNUSABLE_ERRORS


class _DeadLettersBase(BaseHandler):
    """Holds the bus's :class:`DeadLetters`; 503 when the bus is off or Redis is unreachable.

    Handler kwargs: ``deadletters`` (None when the bus is off), ``auth_token``.
    """

    deadletters: DeadLetters

    def initialize(self, deadletters: DeadLetters | None, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self._deadletters = deadletters
        self.auth_token = auth_token

    def prepare(self) -> None:
        super().prepare()
        if self._deadletters is None:
            raise RestError(503, "the message bus is off (set SBUSR_REDIS_URL)")
        self.deadletters = self._deadletters

    async def answer(self, work: Awaitable[dict[str, Any]]) -> None:
        """Write the result of ``work``; its domain and Redis errors as REST errors."""
        try:
            result = await work
        except DeadLetterNotFound as exc:
            raise RestError(404, str(exc)) from None
        except _bus_errors() as exc:
            raise RestError(503, f"the message bus cannot be used: {exc}") from None
        self.write_json(result)


class DeadLettersHandler(_DeadLettersBase):
    """``GET /api/deadletters``: a page, newest first."""

    async def get(self) -> None:
        """Answer one page (``limit``, ``before``: see the module doc)."""
        limit_text = self.get_query_argument("limit", str(DEFAULT_PAGE))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
            raise RestError(400, f"limit must be an integer from 1 to {MAX_PAGE}")
        before = self.get_query_argument("before", None)
        if before is not None and not _ENTRY_ID.match(before):
            raise RestError(400, "before must be an entry id like 1700000000000-0")
        await self.answer(self.deadletters.page(int(limit_text), before))


class DeadLetterHandler(_DeadLettersBase):
    """``GET /api/deadletters/{entry id}`` and ``DELETE /api/deadletters/{entry id}``."""

    async def get(self, entry_id: str) -> None:
        """Answer one dead letter."""
        await self.answer(self.deadletters.get(entry_id))

    async def delete(self, entry_id: str) -> None:
        """Drop one dead letter."""
        await self.answer(self.deadletters.drop(entry_id))


class DeadLetterActionHandler(_DeadLettersBase):
    """``POST /api/deadletters/{entry id}/replay``."""

    async def post(self, entry_id: str) -> None:
        """Put the dead letter back on the request stream (body: ``{"timeout_ms"?: int}``)."""
        body = self.json_body()
        body = {} if body is None else body
        errors = error_list(_REPLAY_VALIDATOR.iter_errors(body))
        if errors:
            raise RestError(400, "the body does not match the replay schema", details=errors)
        await self.answer(self.deadletters.replay(entry_id, body.get("timeout_ms")))
