"""What every HTTP handler of sbusr shares: auth, request ids, JSON bodies and JSON errors.

REST errors have one shape (design.md, "REST helpers")::

    {"error": {"code": <HTTP status>, "message": "...", "details": ...}}

:meth:`BaseHandler.write_error` is the one place such bodies are built, so unknown routes,
wrong HTTP methods, domain errors (mapped by :func:`server.http.errors.rest_error_of`) and
unexpected exceptions answer JSON, never Tornado's HTML page.

Handlers take their dependencies as route kwargs through ``initialize()`` (the route table is
:func:`server.http.app.make_app`); each one that needs a token takes ``auth_token``.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any

import tornado.httputil
import tornado.web

from server.http.errors import RestError, rest_error_of
from wire.codec import decode_strict, encode_compact

__all__ = ["REQUEST_ID_HEADER", "BaseHandler", "NotFoundHandler", "request_id_of"]

logger = logging.getLogger(__name__)


#: The header that names a request in logs: taken from the request, else generated.
REQUEST_ID_HEADER = "X-Request-ID"

_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}\Z")


def request_id_of(request: tornado.httputil.HTTPServerRequest) -> str:
    """The request id of an HTTP request: its ``X-Request-ID`` when sane, else a new one.

    Returns:
        The header's value when it is 1-128 characters of ``A-Z a-z 0-9 . _ : @ / + = -``
        (so it cannot forge log lines), else 32 random hex digits (128 bits).
    """
    given = request.headers.get(REQUEST_ID_HEADER)
    if given and _ACCEPTED_REQUEST_ID.match(given):
        return given
    return os.urandom(16).hex()


class BaseHandler(tornado.web.RequestHandler):
    """Base of every sbusr handler: auth, request ids, JSON bodies and errors.

    When :attr:`auth_token` is set, every request must carry ``Authorization: Bearer <token>``
    unless the handler sets ``requires_auth = False``; otherwise it gets 401. A subclass that
    requires auth sets :attr:`auth_token` in its ``initialize()`` (route kwarg ``auth_token``).

    Every response, errors included, carries ``X-Request-ID``: the request's own (see
    :func:`request_id_of`) or a generated one, also kept as :attr:`request_id`.

    Attributes:
        auth_token: the bearer token the server requires, or None for none.
        request_id: the request's id (see above).
        rpc_methods: the JSON-RPC methods the request called, for the access log.
    """

    requires_auth = True
    auth_token: str | None
    request_id: str
    rpc_methods: Sequence[str] = ()

    def set_default_headers(self) -> None:
        # called at construction and again by clear() before an error body: keep one id
        request_id = self.__dict__.get("request_id")
        if request_id is None:
            request_id = self.request_id = request_id_of(self.request)
        self.set_header(REQUEST_ID_HEADER, request_id)

    def prepare(self) -> None:
        """Check the bearer token (see the class doc).

        Raises:
            RestError: 401 with ``WWW-Authenticate`` when the token is missing or wrong.
        """
        if not self.requires_auth:
            return
        token = self.auth_token
        if token:
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

    def json_body(self) -> Any:
        """The request body as strict JSON (RFC 8259); an empty body is ``null``.

        Raises:
            RestError: 400 "the body is not JSON", ``details`` ``[{"path": "/", "message"}]``.
        """
        try:
            return decode_strict(self.request.body or b"null")
        except (ValueError, RecursionError) as exc:
            message = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise RestError(
                400, "the body is not JSON", details=[{"path": "/", "message": message}]
            ) from None

    def write_json(self, value: Any, status: int = 200) -> None:
        """Finish the response with ``value`` as compact JSON and the given HTTP status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(encode_compact(value))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Log what a handler raised: nothing for a REST error or a mapped domain error
        (the response says it all), Tornado's error line with the stack for anything else."""
        if value is not None and rest_error_of(value) is not None:
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Write the JSON error body: ``{"error": {"code", "message", "details"?}}``.

        A :class:`RestError` or a domain error that :func:`rest_error_of` maps sets the status,
        message, details and headers; other errors answer their status with its reason phrase
        (Tornado's own 4xx keep their message; a 500 never shows the exception).
        """
        error = kwargs.get("exc_info", (None, None, None))[1]
        rest = rest_error_of(error) if error is not None else None
        if rest is not None:
            if rest.status_code != status_code:
                status_code = rest.status_code
                self.set_status(status_code)
            body: dict[str, Any] = {"code": status_code, "message": rest.message}
            if rest.details is not None:
                body["details"] = rest.details
            for name, value in rest.headers.items():
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
        self.finish(encode_compact({"error": body}))


class NotFoundHandler(BaseHandler):
    """Answers every unknown route with a JSON 404 (after auth, so routes are not probed).

    Handler kwargs: ``auth_token``.
    """

    def initialize(self, auth_token: str | None) -> None:
        """Take the route kwargs: the bearer token the server requires, or None."""
        self.auth_token = auth_token

    def prepare(self) -> None:
        super().prepare()
        raise RestError(404, f"no route {self.request.path}")
