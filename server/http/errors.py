"""REST errors, and the one mapping from domain errors to them (design.md, "REST helpers").

Every REST error is answered as JSON ``{"error": {"code": <HTTP status>, "message", "details"?}}``
(built by :func:`error_body`, the one writer, for the handlers and for the ``POST /rpc`` path).
A handler raises either a :class:`RestError` for what is its own decision (auth, limits, a
service that is off), or lets a domain error propagate; :func:`rest_error_of` turns the
latter into its REST error:

=========================================  ======  ======================================
domain error                               status  message / details
=========================================  ======  ======================================
``executor.pool.ReloadFailed``             500     details: ``[{"module", "type", "message"}]``
``server.bus.errors.NoLivePeer``           404     which peer was asked for
``server.bus.errors.FlowRejected``         502     details: the ack ``{"invoke_id", "peer",
                                                   "ack", "msg"}``
``server.bus.errors.BusUnreachable``       503     why Redis cannot be reached
``server.bus.errors.FlowAckTimeout``       504     details: ``{"invoke_id", "peer"}``
``kit.jobs.JobSpecError``                 400     details: ``[{"path", "message"}]``
``server.scheduler.service.JobNotFound``   404     ``no job '<id>'``
``server.scheduler.service.JobExists``     409     ``a job with id '<id>' exists``
``server.openrpc_cache.DocumentUnavailable``  503  details: the worker call's error object
``wire.errors.ServerBusy``                 503     ``Retry-After: 1``; details: its data
=========================================  ======  ======================================

Anything else is not mapped (:func:`rest_error_of` returns None): a bug, answered 500 and
logged with its stack.
"""

from __future__ import annotations

import functools
from typing import Any

import tornado.web

from executor.pool import ReloadFailed
from kit.jobs import JobSpecError
from server.bus.errors import BusUnreachable, FlowAckTimeout, FlowRejected, NoLivePeer
from server.openrpc_cache import DocumentUnavailable
from server.scheduler.service import JobExists, JobNotFound
from wire.codec import encode_compact
from wire.errors import ServerBusy

__all__ = ["RETRY_AFTER_S", "RestError", "error_body", "rest_error_of"]

#: Seconds a refused caller is asked to wait (``Retry-After`` of a 503 "busy").
RETRY_AFTER_S = 1


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


def error_body(status: int, message: str, details: Any = None) -> bytes:
    """The JSON body of a REST error: ``{"error": {"code", "message", "details"?}}``, UTF-8.

    Args:
        status: the HTTP status code (the body's ``code``).
        message: for the client.
        details: JSON-encodable facts, or None for no ``details`` member.
    """
    error: dict[str, Any] = {"code": status, "message": message}
    if details is not None:
        error["details"] = details
    return encode_compact({"error": error})


@functools.singledispatch
def rest_error_of(error: BaseException) -> RestError | None:
    """The REST error of a domain error (the table of the module doc), or None if unmapped.

    Args:
        error: an exception a handler let propagate.

    Returns:
        The :class:`RestError` to answer with; ``error`` itself when it is one; None for an
        exception that has no REST meaning (the caller answers 500).
    """
    return error if isinstance(error, RestError) else None


@rest_error_of.register
def _reload_failed(error: ReloadFailed) -> RestError:
    return RestError(
        500, "the new code failed to import; the old generation keeps serving", error.errors
    )


@rest_error_of.register
def _no_live_peer(error: NoLivePeer) -> RestError:
    return RestError(404, str(error))


@rest_error_of.register
def _flow_rejected(error: FlowRejected) -> RestError:
    return RestError(502, str(error), details=error.ack)


@rest_error_of.register
def _bus_unreachable(error: BusUnreachable) -> RestError:
    return RestError(503, str(error))


@rest_error_of.register
def _flow_ack_timeout(error: FlowAckTimeout) -> RestError:
    return RestError(504, str(error), details={"invoke_id": error.invoke_id, "peer": error.peer})


@rest_error_of.register
def _job_spec_error(error: JobSpecError) -> RestError:
    return RestError(400, "invalid job", details=error.errors)


@rest_error_of.register
def _job_not_found(error: JobNotFound) -> RestError:
    return RestError(404, f"no job {error.args[0]!r}")


@rest_error_of.register
def _job_exists(error: JobExists) -> RestError:
    return RestError(409, f"a job with id {error.args[0]!r} exists")


@rest_error_of.register
def _document_unavailable(error: DocumentUnavailable) -> RestError:
    return RestError(503, "cannot build the document", details=error.error.to_object())


@rest_error_of.register
def _server_busy(error: ServerBusy) -> RestError:
    return RestError(
        503, error.message, details=error.data, headers={"Retry-After": str(RETRY_AFTER_S)}
    )
