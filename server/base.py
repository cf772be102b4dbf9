"""What every HTTP handler of sbusr shares: JSON error bodies, bearer-token auth.

REST errors have one shape (design.md, "REST helpers")::

    {"error": {"code": <HTTP status>, "message": "...", "details": ...}}

:meth:`BaseHandler.write_error` is the one place such bodies are built, so unknown routes,
wrong HTTP methods and unexpected exceptions answer JSON, never Tornado's HTML page.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
from http import HTTPStatus
from typing import Any

import tornado.web

__all__ = [
    "BaseHandler",
    "NotFoundHandler",
    "RestError",
    "json_bytes",
    "request_id_of",
    "REQUEST_ID_HEADER",
]

logger = logging.getLogger(__name__)


#: The header that names a request in logs: taken from the request, else generated.
REQUEST_ID_HEADER = "X-Request-ID"

_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}\Z")


def request_id_of(request: Any) -> str:
    """The request id of an HTTP request: its ``X-Request-ID`` when sane, else a new one.

    Args:
        request: a :class:`tornado.httputil.HTTPServerRequest`.

    Returns:
        The header's value when it is 1-128 characters of ``A-Z a-z 0-9 . _ : @ / + = -``
        (so it cannot forge log lines), else 32 random hex digits (128 bits).
    """
    given = request.headers.get(REQUEST_ID_HEADER)
    if given and _ACCEPTED_REQUEST_ID.match(given):
        return given
    return os.urandom(16).hex()


def json_bytes(value: Any) -> bytes:
    """Encode a JSON-encodable value as compact UTF-8 JSON bytes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class RestError(tornado.web.HTTPError):
    """A REST error answered as ``{"error": {"code", "message", "details"?}}``.

    Args:
        status: the HTTP status code (also the ``code`` of the body).
        message: for the client.
        details: optional JSON-encodable facts, e.g. the list of schema errors.
        headers: extra response headers, e.g. ``{"Retry-After": "1"}``.
    """

    def __init__(
        self, status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, log_message=None)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BaseHandler(tornado.web.RequestHandler):
    """Base of every sbusr handler: JSON errors and auth.

    Application settings read: ``sbusr`` (the :class:`settings.Settings`). When
    ``auth_token`` is set, every request must carry ``Authorization: Bearer <token>``
    unless the handler sets ``requires_auth = False``; otherwise it gets 401.

    Every response, errors included, carries ``X-Request-ID``: the request's own (see
    :func:`request_id_of`) or a generated one, also kept as :attr:`request_id`.
    """

    requires_auth = True
    request_id: str

    def set_default_headers(self) -> None:
        # called at construction and again by clear() before an error body: keep one id
        request_id = self.__dict__.get("request_id")
        if request_id is None:
            request_id = self.request_id = request_id_of(self.request)
        self.set_header(REQUEST_ID_HEADER, request_id)

    def prepare(self) -> None:
        token = self.application.settings["sbusr"].auth_token
        if token and self.requires_auth:
            given = self.request.headers.get("Authorization", "")
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.strip().encode(), token.encode()
            ):
                raise RestError(
                    401,
                    "missing or wrong bearer token",
                    headers={"WWW-Authenticate": 'Bearer realm="sbusr"'},
                )

    def write_json(self, value: Any, status: int = 200) -> None:
        """Finish the response with ``value`` as JSON and the given HTTP status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json_bytes(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, RestError):
            body: dict[str, Any] = {"code": status_code, "message": error.message}
            if error.details is not None:
                body["details"] = error.details
            for name, value in error.headers.items():
                self.set_header(name, value)
        else:
            try:
                reason = HTTPStatus(status_code).phrase
            except ValueError:
                reason = self._reason
            body = {"code": status_code, "message": reason}
            if isinstance(error, tornado.web.HTTPError) and error.log_message and status_code < 500:
                body["message"] = (
                    error.log_message % error.args if error.args else error.log_message
                )
        self.set_header("Content-Type", "application/json")
        self.finish(json_bytes({"error": body}))


class NotFoundHandler(BaseHandler):
    """Answers every unknown route with a JSON 404 (after auth, so routes are not probed)."""

    def prepare(self) -> None:
        super().prepare()
        raise RestError(404, f"no route {self.request.path}")
