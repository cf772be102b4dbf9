"""System routes: ``/sys/reset`` (hot reload), ``/sys/status``, ``/health_check``."""

from __future__ import annotations

import logging

from executor.pool import ReloadFailed
from server.base import BaseHandler, RestError

__all__ = ["ResetHandler", "StatusHandler", "HealthHandler"]

logger = logging.getLogger(__name__)


class ResetHandler(BaseHandler):
    """``GET|POST /sys/reset``: start a new generation of workers with freshly imported code.

    200 ``{"generation": int, "elapsed_ms": float}``; 500 ``{"error": {"code": 500, "message",
    "details": [{"module", "type", "message"}]}}`` when the new code fails to import, and
    the old generation keeps serving. Concurrent resets run one after the other.
    """

    async def get(self) -> None:
        pool = self.application.settings["pool"]
        try:
            outcome = await pool.reload()
        except ReloadFailed as exc:
            logger.error("reload refused, generation %d keeps serving: %s", pool.generation, exc)
            raise RestError(
                500,
                "the new code failed to import; generation %d keeps serving" % pool.generation,
                details=exc.errors,
            ) from None
        self.write_json(outcome)

    post = get


class StatusHandler(BaseHandler):
    """``GET /sys/status``: generation, workers (pid, busy, calls served), queue, uptime."""

    def get(self) -> None:
        self.write_json(self.application.settings["pool"].status())


class HealthHandler(BaseHandler):
    """``GET /health_check``: 200 ``{"status": "ok", "generation": int}``; never needs a token."""

    requires_auth = False

    def get(self) -> None:
        pool = self.application.settings["pool"]
        self.write_json({"status": "ok", "generation": pool.generation})
