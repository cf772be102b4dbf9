"""What every HTTP handler of sbusr shares: auth, request ids, CORS, JSON bodies and errors.

REST errors have one shape (design.md, "REST helpers")::

    {"error": {"code": <HTTP status>, "message": "...", "details": ...}}

:meth:`BaseHandler.write_error` answers every error of a handler with such a body (built by
:func:`server.http.errors.error_body`), so unknown routes, wrong HTTP methods, domain errors
(mapped by :func:`server.http.errors.rest_error_of`) and unexpected exceptions answer JSON,
never Tornado's HTML page. The ``POST /rpc`` path (:mod:`server.http.rpc`), which runs below
``tornado.web``, shares :func:`request_id_of`, :func:`bearer_refusal` and that body writer.

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

from server import tracing
from server.http import traced
from server.http.cors import CorsPolicy, is_preflight
from server.http.errors import RestError, error_body, rest_error_of
from wire.codec import decode_strict, encode_compact

__all__ = [
    "REQUEST_ID_HEADER",
    "BaseHandler",
    "NotFoundHandler",
    "bearer_refusal",
    "request_id_from_headers",
    "request_id_of",
]

logger = logging.getLogger(__name__)


#: The header that names a request in logs: taken from the request, else generated.
REQUEST_ID_HEADER = "X-Request-ID"

_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}\Z")


_NO_CORS = CorsPolicy(())

_HANDLER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def bearer_refusal(token: str | None, authorization: str | None) -> RestError | None:
    """Check a request's ``Authorization`` header against the server's bearer token.

    Args:
        token: the token the server requires, or None (no auth: nothing is refused).
        authorization: the request's ``Authorization`` header, or None when absent.

    Returns:
        None when the request may pass; else the 401 :class:`RestError` to answer, with
        ``WWW-Authenticate: Bearer realm="sbusr"`` (RFC 6750). Compared in constant time.
    """
    if not token:
        return None
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        return None
    return RestError(
        401, "missing or wrong bearer token", headers={"WWW-Authenticate": 'Bearer realm="sbusr"'}
    )


def request_id_of(request: tornado.httputil.HTTPServerRequest) -> str:
    """The request id of an HTTP request: its ``X-Request-ID`` when sane, else a new one.

    Returns:
        The header's value when it is 1-128 characters of ``A-Z a-z 0-9 . _ : @ / + = -``
        (so it cannot forge log lines), else 32 random hex digits (128 bits).
    """
    return request_id_from_headers(request.headers)


def request_id_from_headers(headers: tornado.httputil.HTTPHeaders) -> str:
    """The request id of a request with these headers (see :func:`request_id_of`)."""
    given = headers.get(REQUEST_ID_HEADER)
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

    CORS (:mod:`server.http.cors`, policy from the application setting ``cors``): responses to
    an allowed origin carry its headers; a preflight ``OPTIONS`` needs no token and is answered
    by :meth:`options` with the methods of :attr:`cors_methods` (default: those the handler
    defines).

    ``HEAD`` is answered wherever ``GET`` is and only reads (:meth:`head`).

    Attributes:
        auth_token: the bearer token the server requires, or None for none.
        request_id: the request's id (see above).
        rpc_methods: the JSON-RPC methods the request called, for the access log.
    """

    requires_auth = True
    #: Whether ``GET`` only reads; False where it changes state (``HEAD`` is then 405).
    get_is_safe = True
    auth_token: str | None
    request_id: str
    rpc_methods: Sequence[str] = ()
    cors_methods: str | None = None
    #: The request's span (:mod:`server.http.traced`) while tracing is on, else None.
    _span: Any = None

    def set_default_headers(self) -> None:
        # called at construction and again by clear() before an error body: keep one id
        request_id = self.__dict__.get("request_id")
        if request_id is None:
            request_id = self.request_id = request_id_of(self.request)
        self.set_header(REQUEST_ID_HEADER, request_id)
        cors = self.cors
        if cors.enabled:
            for name, value in cors.response_headers(self.request.headers.get("Origin")):
                self.set_header(name, value)

    @property
    def cors(self) -> CorsPolicy:
        """The CORS policy of the application (setting ``cors``); none allowed when unset."""
        policy: CorsPolicy = self.settings.get("cors", _NO_CORS)
        return policy

    def options(self, *args: str) -> None:
        """Answer a CORS preflight: 204 with its headers, or 403 for an origin not allowed.

        Raises:
            RestError: 403 when the origin is not allowed (see :mod:`server.http.cors`).
            tornado.web.HTTPError: 405 for an ``OPTIONS`` that is not a preflight.
        """
        if not is_preflight(self.request.method, self.request.headers):
            raise tornado.web.HTTPError(405)
        origin = self.request.headers.get("Origin")
        headers = self.cors.preflight_headers(origin, self._allowed_methods())
        if not headers:
            raise RestError(403, f"origin {origin} may not call this server (SBUSR_CORS_ORIGINS)")
        for name, value in headers:
            self.set_header(name, value)
        self.clear_header("Access-Control-Expose-Headers")
        self.set_status(204)
        self.finish()

    def _allowed_methods(self) -> str:
        if self.cors_methods is not None:
            return self.cors_methods
        own, plain = type(self), tornado.web.RequestHandler
        return ", ".join(
            method
            for method in _HANDLER_METHODS
            if getattr(own, method.lower()) is not getattr(plain, method.lower())
        )

    def head(self, *args: str, **kwargs: str) -> Any:
        """``HEAD``: what ``GET`` answers, headers only (RFC 9110 §9.3.2): status, headers and
        ``Content-Length`` of the ``GET`` response, no body (Tornado drops it for ``HEAD``).

        Raises:
            tornado.web.HTTPError: 405 where the handler serves no ``GET``, or where its
                ``GET`` changes state (:attr:`get_is_safe` False: a ``HEAD`` must not).
        """
        if not self.get_is_safe or type(self).get is tornado.web.RequestHandler.get:
            raise tornado.web.HTTPError(405)
        return self.get(*args, **kwargs)

    def prepare(self) -> None:
        """Check the bearer token (see the class doc).

        With tracing on, the request's span starts here (:mod:`server.http.traced`).

        Raises:
            RestError: 401 with ``WWW-Authenticate`` when the token is missing or wrong.
        """
        if tracing.active is not None:
            self._span = traced.request_started(tracing.active, self)
        if not self.requires_auth or is_preflight(self.request.method, self.request.headers):
            return
        refusal = bearer_refusal(self.auth_token, self.request.headers.get("Authorization"))
        if refusal is not None:
            raise refusal

    def on_finish(self) -> None:
        """The response is finished: end the request's span (tracing on)."""
        if self._span is not None:
            traced.request_finished(self._span, self)

    def json_body(self) -> Any:
        """The request body as strict JSON (RFC 8259); an empty body is ``null``.

        A string holding a lone surrogate (``"\\udc80"`` parses, but UTF-8 cannot carry it) is
        refused too: what a route stores, sends on the bus or answers must encode.

        Raises:
            RestError: 400 "the body is not JSON", ``details`` ``[{"path": "/", "message"}]``.
        """
        try:
            body = decode_strict(self.request.body or b"null")
            encode_compact(body)
        except UnicodeEncodeError:
            message = 'a string holds a lone surrogate (such as "\\udc80"), not Unicode text'
            raise RestError(
                400, "the body is not JSON", details=[{"path": "/", "message": message}]
            ) from None
        except (ValueError, RecursionError) as exc:
            message = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise RestError(
                400, "the body is not JSON", details=[{"path": "/", "message": message}]
            ) from None
        return body

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
            for name, value in rest.headers.items():
                self.set_header(name, value)
            body = error_body(status_code, rest.message, rest.details)
        else:
            try:
                message = HTTPStatus(status_code).phrase
            except ValueError:
                message = self._reason
            if isinstance(error, tornado.web.HTTPError) and error.log_message and status_code < 500:
                message = error.log_message % error.args if error.args else error.log_message
            body = error_body(status_code, message)
        self.set_header("Content-Type", "application/json")
        self.finish(body)


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
