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
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from server.base import BaseHandler, RestError
from server.bus.flow import BusUnreachable, FlowAckTimeout, FlowRejected, FlowStarter, NoLivePeer

__all__ = ["FlowHandler", "FLOW_SCHEMA"]

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

_VALIDATOR = jsonschema.Draft202012Validator(FLOW_SCHEMA)


def schema_errors(body: Any) -> list[dict[str, str]]:
    """The schema errors of ``body``: ``[{"path": JSON pointer, "message": str}, ...]``."""
    return [
        {
            "path": "/" + "/".join(str(part) for part in error.absolute_path),
            "message": error.message,
        }
        for error in sorted(
            _VALIDATOR.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))
        )
    ]


class FlowHandler(BaseHandler):
    """Validates the body, asks :class:`~server.bus.flow.FlowStarter` and maps its errors.

    Handler kwargs: ``starter`` -- the FlowStarter, or None when the bus is off.
    """

    def initialize(self, starter: FlowStarter | None) -> None:
        """Take the route's kwargs: the flow starter, or None when the bus is off."""
        self.starter = starter

    async def post(self) -> None:
        """Answer one flow start (the table of the module doc)."""
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RestError(
                400, "the body is not JSON", details=[{"path": "/", "message": str(exc)}]
            ) from None
        errors = schema_errors(body)
        if errors:
            raise RestError(400, "the body does not match the flow start schema", details=errors)
        if self.starter is None:
            raise RestError(503, "the message bus is off (set SBUSR_REDIS_URL)")
        try:
            answer = await self.starter.start(
                body["project"],
                body["flow"],
                body.get("params"),
                body.get("server"),
                body.get("process"),
            )
        except NoLivePeer as exc:
            raise RestError(404, str(exc)) from None
        except FlowRejected as exc:
            raise RestError(502, str(exc), details=exc.ack) from None
        except FlowAckTimeout as exc:
            raise RestError(
                504, str(exc), details={"invoke_id": exc.invoke_id, "peer": exc.peer}
            ) from None
        except BusUnreachable as exc:
            raise RestError(503, str(exc)) from None
        self.write_json(answer)
