"""Cross-origin calls from browsers: CORS (the Fetch standard, "CORS protocol").

``SBUSR_CORS_ORIGINS`` lists the origins (``https://app.example:8443``) whose pages may call
the server; ``*`` allows any origin. Unset: none, and no response carries a CORS header.

* A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) needs no
  token. From an allowed origin it is answered 204 with ``Access-Control-Allow-Origin`` (the
  request's origin), ``-Allow-Methods`` (the route's), ``-Allow-Headers``
  (:data:`ALLOWED_REQUEST_HEADERS`), ``-Max-Age`` (:data:`MAX_AGE_S`) and ``Vary: Origin``;
  from any other origin it is a JSON 403 without CORS headers.
* Every other response to a request from an allowed origin carries
  ``Access-Control-Allow-Origin``, ``Access-Control-Expose-Headers`` (:data:`EXPOSED_HEADERS`)
  and ``Vary: Origin``. No credentials mode: the token travels in ``Authorization``, which
  preflights allow, never in cookies.

``*`` is answered with the request's own origin, not a literal ``*``, so that the answer is
the same for every origin a page may come from.
"""

from __future__ import annotations

from collections.abc import Iterable

import tornado.httputil

__all__ = [
    "ALLOWED_REQUEST_HEADERS",
    "EXPOSED_HEADERS",
    "MAX_AGE_S",
    "CorsPolicy",
    "is_preflight",
]

#: Request headers a cross-origin page may send (``Access-Control-Allow-Headers``).
ALLOWED_REQUEST_HEADERS = "Content-Type, Authorization, X-Request-ID, X-Timeout-Ms, Idempotency-Key"

#: Response headers a cross-origin page may read (``Access-Control-Expose-Headers``).
EXPOSED_HEADERS = "X-Request-ID, Retry-After, Idempotent-Replayed"

#: How long a browser may keep a preflight's answer, seconds (``Access-Control-Max-Age``).
MAX_AGE_S = 600


def is_preflight(method: str | None, headers: tornado.httputil.HTTPHeaders) -> bool:
    """True for a CORS preflight: ``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``."""
    return (
        method == "OPTIONS" and "Origin" in headers and "Access-Control-Request-Method" in headers
    )


class CorsPolicy:
    """Which origins may call, and the CORS headers of their responses (see the module doc).

    Args:
        origins: allowed origins as ``scheme://host[:port]``, or ``*`` for any; empty: none.
    """

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.any_origin = "*" in self.origins
        #: False when no origin is allowed: callers skip every CORS step.
        self.enabled = bool(self.origins)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request's ``Origin``, or None
        when that origin is not allowed (or the request has none)."""
        if origin is None or not self.enabled:
            return None
        return origin if self.any_origin or origin in self.origins else None

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of an actual (not preflight) response: ``[(name, value), ...]``,
        empty when the origin is not allowed."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return []
        return [
            ("Access-Control-Allow-Origin", allowed),
            ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
            ("Vary", "Origin"),
        ]

    def preflight_headers(self, origin: str | None, methods: str) -> list[tuple[str, str]]:
        """The headers of a 204 preflight answer, or empty when the origin is not allowed.

        Args:
            origin: the request's ``Origin``.
            methods: the route's methods, e.g. ``"POST"`` or ``"GET, POST"``.
        """
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return []
        return [
            ("Access-Control-Allow-Origin", allowed),
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS),
            ("Access-Control-Max-Age", str(MAX_AGE_S)),
            ("Vary", "Origin"),
        ]
