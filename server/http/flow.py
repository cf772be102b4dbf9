"""``POST /api/flow``: start a flow on a live bus peer (design.md, "REST helpers").

Body ``{"project": str, "flow": str, "params"?: any, "server"?: int, "process"?: int}``
(``server`` = the peer's unit id, ``process`` = its client id; left out: any live peer).

=====  ===================================================================
200    ``{"invoke_id", "peer", "ack": 1, "msg"}``
400    the body is not JSON or fails the schema; ``details`` lists each error
       as ``{"path": "/server", "message": "..."}``
404    no live peer matches
502    the peer answered ack != 1; ``details`` is ``{"invoke_id", "peer", "ack", "msg"}``
503    the bus is off (no SBUSR_REDIS_URL) or Redis is unreachable
504    no ack within FLOW_ACK_TIMEOUT seconds; ``details`` ``{"invoke_id", "peer"}``
=====  ===================================================================

The 404, 502, 503 (Redis) and 504 are the flow starter's errors, mapped in
:mod:`server.http.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.http.base import BaseHandler
from server.http.errors import RestError
from wire.schema import LazyValidator, error_list

if TYPE_CHECKING:
    from server.bus.flow import FlowStarter

__all__ = ["FLOW_SCHEMA", "FlowHandler"]

#: JSON Schema of the request body.
FLOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "project": {"type": "string", "minLength": 1},
        "flow": {"type": "string", "minLength": 1},
        "params": {},
        "server": {"type": "integer"},
        "process": {"type": "integer"},
    },
    "required": ["project", "flow"],
    "additionalProperties": False,
}

_VALIDATOR = LazyValidator(FLOW_SCHEMA)


class FlowHandler(BaseHandler):
    """Validates the body and asks :class:`~server.bus.flow.FlowStarter` (module doc's table).

    Handler kwargs: ``starter`` (the flow starter, or None when the bus is off),
    ``auth_token``.
    """

    def initialize(self, starter: FlowStarter | None, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.starter = starter
        self.auth_token = auth_token

    async def post(self) -> None:
        """Answer one flow start (the table of the module doc)."""
        body = self.json_body()
        errors = error_list(_VALIDATOR.iter_errors(body))
        if errors:
            raise RestError(400, "the body does not match the flow start schema", details=errors)
        if self.starter is None:
            raise RestError(503, "the message bus is off (set SBUSR_REDIS_URL)")
        answer = await self.starter.start(
            body["project"],
            body["flow"],
            body.get("params"),
            body.get("server"),
            body.get("process"),
        )
        self.write_json(answer)
