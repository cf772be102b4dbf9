"""``GET /metrics``: the server's metrics in the Prometheus text format (docs/operations.md)."""

from __future__ import annotations

from server.http.base import BaseHandler
from server.metrics import CONTENT_TYPE, Metrics

__all__ = ["MetricsHandler"]


class MetricsHandler(BaseHandler):
    """``GET /metrics``: every metric of :class:`server.metrics.Metrics`, text format 0.0.4.

    Needs the bearer token when the server has one (Prometheus: ``authorization`` in the
    scrape config). Handler kwargs: ``metrics``, ``auth_token``.
    """

    def initialize(self, metrics: Metrics, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.metrics = metrics
        self.auth_token = auth_token

    def get(self) -> None:
        """Answer the scrape."""
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.metrics.render())
