"""System routes: ``/sys/reset`` (hot reload), ``/sys/status``, ``/health_check``, ``/ready``."""

from __future__ import annotations

import logging

from executor.pool import Pool, ReloadFailed
from server.http.base import BaseHandler
from server.readiness import Readiness

__all__ = ["HealthHandler", "ReadyHandler", "ResetHandler", "StatusHandler"]

logger = logging.getLogger(__name__)


class ResetHandler(BaseHandler):
    """``GET|POST /sys/reset``: start a new generation of workers with freshly imported code.

    200 ``{"generation": int, "elapsed_ms": float}``; 500 ``{"error": {"code": 500, "message",
    "details": [{"module", "type", "message"}]}}`` when the new code fails to import, and
    the old generation keeps serving. Concurrent resets run one after the other.

    Handler kwargs: ``pool``, ``auth_token``.
    """

    get_is_safe = False  # a HEAD must not reload

    def initialize(self, pool: Pool, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.pool = pool
        self.auth_token = auth_token

    async def get(self) -> None:
        """Reload; a :class:`ReloadFailed` is answered 500 (see :mod:`server.http.errors`)."""
        try:
            outcome = await self.pool.reload()
        except ReloadFailed as exc:
            logger.error(
                "reload refused, generation %d keeps serving: %s", self.pool.generation, exc
            )
            raise
        self.write_json(outcome)

    post = get


class StatusHandler(BaseHandler):
    """``GET /sys/status``: generation, workers (pid, busy, calls served), queue, uptime.

    Handler kwargs: ``pool``, ``auth_token``.
    """

    def initialize(self, pool: Pool, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.pool = pool
        self.auth_token = auth_token

    def get(self) -> None:
        """Answer :meth:`executor.pool.Pool.status`."""
        self.write_json(self.pool.status())


class HealthHandler(BaseHandler):
    """``GET /health_check``: 200 ``{"status": "ok", "generation": int}``; never needs a token.

    Handler kwargs: ``pool``.
    """

    requires_auth = False

    def initialize(self, pool: Pool) -> None:
        """Take the route kwargs (see the class doc)."""
        self.pool = pool

    def get(self) -> None:
        """Answer that the server lives, and its generation."""
        self.write_json({"status": "ok", "generation": self.pool.generation})


class ReadyHandler(BaseHandler):
    """``GET /ready`` (readiness probe): may this instance take traffic? Never needs a token.

    200 ``{"status": "ready", ...}`` when a generation of workers serves and, with the bus on,
    Redis answers; else 503 ``{"status": "not ready", "not_ready": ["workers"|"bus", ...],
    "checks": {"workers": str, "bus": str}, "generation": int}`` naming what is not ready
    (see :meth:`server.readiness.Readiness.check`).

    Handler kwargs: ``readiness``.
    """

    requires_auth = False

    def initialize(self, readiness: Readiness) -> None:
        """Take the route kwargs (see the class doc)."""
        self.readiness = readiness

    async def get(self) -> None:
        """Run the checks; answer 200 or 503."""
        outcome = await self.readiness.check()
        ready = outcome.pop("ready")
        status = {"status": "ready" if ready else "not ready", **outcome}
        self.write_json(status, 200 if ready else 503)
