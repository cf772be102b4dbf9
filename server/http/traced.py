"""The spans of the REST routes (docs/operations.md, "Tracing"): one SERVER span per request
of a ``tornado.web`` handler, with tracing on.

:class:`~server.http.base.BaseHandler` calls :func:`request_started` from ``prepare`` while
:data:`server.tracing.active` is set, and :func:`request_finished` from ``on_finish``; the
spans themselves are made by :class:`server.spans.CallSpans`. ``POST /rpc`` is not served by
a handler (:mod:`server.http.rpc` makes its span).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import tornado.routing
import tornado.web

if TYPE_CHECKING:
    from server.spans import CallSpans

__all__ = ["request_finished", "request_started", "route_of"]

_PLACEHOLDER = re.compile(r"\\\{[^/]*?\\\}")


def request_started(spans: CallSpans, handler: tornado.web.RequestHandler) -> Any:
    """Start the span of the request ``handler`` serves.

    Args:
        spans: the span recorder (:data:`server.tracing.active`).
        handler: the handler, in ``prepare``; its ``request_id`` names the request.

    Returns:
        The span (an OpenTelemetry span), for :func:`request_finished`.
    """
    request = handler.request
    return spans.rest_request_started(
        request.method or "",
        request.path,
        request.headers,
        request._start_time,
        getattr(handler, "request_id", ""),
    )


def request_finished(span: Any, handler: tornado.web.RequestHandler) -> None:
    """End the span of :func:`request_started` with the response's status and the route."""
    from server.spans import CallSpans

    request = handler.request
    CallSpans.rest_request_finished(
        span, request.method or "", handler.get_status(), route_of(handler)
    )


def route_of(handler: tornado.web.RequestHandler) -> str | None:
    """The path template of the route that serves ``handler``'s request, or None.

    Example: ``GET /api/jobs/nightly/run`` -> ``"/api/jobs/{job_id}/run"`` (the template of
    :func:`server.openapi.path_templates`); None for a path no route serves (the JSON 404) or
    a rule not matched on the path alone. Walks the route table (a few regular expressions).
    """
    from server.openapi import path_templates

    path = handler.request.path
    for rule in handler.application.wildcard_router.rules:
        matcher = rule.matcher
        if rule.target is not type(handler) or not isinstance(matcher, tornado.routing.PathMatches):
            continue
        if matcher.regex.match(path) is None:
            continue
        for template in path_templates(matcher.regex.pattern, rule.target):
            shape = _PLACEHOLDER.sub("[^/]+", re.escape(template))
            if re.fullmatch(shape, path):
                return template
    return None
