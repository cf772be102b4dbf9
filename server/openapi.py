"""The OpenAPI 3.1 document of sbusr's HTTP routes, served at ``GET /openapi.json``.

The paths come from the live route table (:func:`rules_of` a Tornado application), so the
document cannot list a route the server does not have, nor miss one: each rule's regular
expression becomes a path template (a group of literal alternatives such as
``(pause|resume|run)`` gives one path per word; any other group becomes ``{name}``, named
after the handler method's argument), and its HTTP methods are the ones the handler class
answers (:func:`_serves`). What each operation means (summary, request body, responses) is
written once in :data:`OPERATIONS` (design.md, "JSON-RPC over HTTP" and "REST helpers"),
with the request body schemas the handlers validate with (:data:`server.http.flow.FLOW_SCHEMA`,
:data:`kit.jobs.JOB_SCHEMA`). An operation of the table that has no entry there is still
listed, marked ``"x-undocumented": true`` (a test fails on it).

``OPTIONS`` and ``HEAD`` are not listed: they are HTTP's own (CORS preflight, headers only),
not operations of the API. The JSON-RPC methods themselves are in the OpenRPC document
(``/openrpc.json``), not here.

Specification: https://spec.openapis.org/oas/v3.1.0 (its schemas are JSON Schema 2020-12).
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Iterable
from typing import Any

import tornado.routing
import tornado.web

from kit.jobs import JOB_SCHEMA
from server.http.deadletters import REPLAY_SCHEMA
from server.http.flow import FLOW_SCHEMA

__all__ = [
    "HTTP_METHODS",
    "OPENAPI_VERSION",
    "OPERATIONS",
    "RouteRule",
    "build_document",
    "path_templates",
    "rules_of",
]

#: Version of the OpenAPI specification the document follows.
OPENAPI_VERSION = "3.1.0"

#: The HTTP methods an operation may have, in the order they are listed.
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

#: One route: ``(regular expression of the path, target, target kwargs)``.
RouteRule = tuple[str, Any, dict[str, Any]]

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_UNAUTHORIZED = _error("missing or wrong bearer token (when the server has one)")
_NO_SCHEDULER = _error("the scheduler is off (SBUSR_SCHEDULER=0)")
_NO_JOB = _error("no job with this id")
_NO_BUS = _error("the bus is off (no SBUSR_REDIS_URL) or Redis cannot be reached")
_NO_DEAD_LETTER = _error("no dead letter with this entry id")

_COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Error": {
            "type": "object",
            "description": "Every REST error (never an HTML page).",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer", "description": "the HTTP status"},
                        "message": {"type": "string"},
                        "details": {"description": "more, e.g. schema errors [{path, message}]"},
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
        },
        "JsonRpcRequest": {
            "type": "object",
            "description": "A JSON-RPC 2.0 request (with an id, even null) or notification.",
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "method": {"type": "string", "examples": ["add"]},
                "params": {"type": ["array", "object"], "examples": [[1, 2]]},
                "id": {"type": ["string", "number", "null"]},
            },
            "required": ["jsonrpc", "method"],
        },
        "JsonRpcResponse": {
            "type": "object",
            "description": "A JSON-RPC 2.0 response: result or error, never both.",
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "result": {},
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "data": {"type": "object"},
                    },
                    "required": ["code", "message"],
                },
                "id": {"type": ["string", "number", "null"]},
            },
            "required": ["jsonrpc", "id"],
        },
        "JobSpec": JOB_SCHEMA,
        "Job": {
            "type": "object",
            "description": "A job: its spec plus its state.",
            "properties": {
                "id": {"type": "string"},
                "method": {"type": "string"},
                "state": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "runs": {"type": "integer"},
                        "last_run_start": {"type": ["string", "null"], "format": "date-time"},
                        "last_run_end": {"type": ["string", "null"], "format": "date-time"},
                        "last_result": {"type": ["string", "null"]},
                        "last_result_truncated": {"type": "boolean"},
                        "last_error": {},
                        "next_run_time": {"type": ["string", "null"], "format": "date-time"},
                        "instance": {"type": ["string", "null"]},
                    },
                },
            },
            "required": ["id", "method", "state"],
        },
        "FlowStart": FLOW_SCHEMA,
        "DeadLetter": {
            "type": "object",
            "description": "A bus entry given up (docs/protocol.md, Dead letters).",
            "properties": {
                "entry_id": {"type": "string"},
                "request_entry_id": {"type": "string"},
                "reason": {"type": "string"},
                "deliveries": {"type": "integer"},
                "method": {"type": ["string", "null"]},
                "methods": {"type": "array", "items": {"type": "string"}},
                "age_s": {"type": "number"},
                "reply_to": {"type": ["string", "null"]},
                "data": {"type": "string"},
                "replayed_from": {"type": ["string", "null"]},
            },
        },
    },
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "SBUSR_AUTH_TOKEN, when the server has one (else no token).",
        }
    },
}

_RPC_BODY = {
    "required": True,
    "content": {
        _JSON: {
            "schema": {
                "oneOf": [
                    _ref("JsonRpcRequest"),
                    {"type": "array", "items": _ref("JsonRpcRequest")},
                ]
            },
            "example": {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
        }
    },
}

_RPC: dict[str, Any] = {
    "summary": "Call JSON-RPC methods: one request or a batch",
    "description": "JSON-RPC 2.0 (docs/protocol.md). Optional headers: `X-Timeout-Ms` (a "
    "deadline for the call), `Idempotency-Key`, `X-Request-ID`. The methods are listed in "
    "/openrpc.json.",
    "tags": ["JSON-RPC"],
    "requestBody": _RPC_BODY,
    "responses": {
        "200": _json(
            {
                "oneOf": [
                    _ref("JsonRpcResponse"),
                    {"type": "array", "items": _ref("JsonRpcResponse")},
                ]
            },
            "the response (errors included: -32700 ... -32004)",
        ),
        "204": {"description": "only notifications were sent: nothing to answer"},
        "400": _error(
            "X-Timeout-Ms is not a number of milliseconds >= 0, or an Idempotency-Key is empty,"
            " over 255 characters or not ASCII"
        ),
        "401": _UNAUTHORIZED,
        "413": _error("the body is over SBUSR_MAX_BODY_BYTES"),
        "422": _error("an Idempotency-Key reused with another body"),
        "503": _json(_ref("JsonRpcResponse"), "the queue is full (-32003); see Retry-After"),
    },
}

#: What each operation means, by ``(path template, http method)``. A path parameter's name
#: does not matter here (``/api/jobs/{}`` matches ``/api/jobs/{job_id}``).
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/rpc", "post"): _RPC,
    ("/", "post"): dict(_RPC, summary="Same as POST /rpc"),
    ("/", "get"): {
        "summary": "From a browser (Accept: text/html): redirect to /docs",
        "tags": ["Discovery"],
        "responses": {"302": {"description": "Location: /docs"}},
        "security": [],
    },
    ("/sys/reset", "get"): {
        "summary": "Hot reload: start a new generation of workers with the code on disk",
        "description": "Running calls finish on the old generation; no call is lost. "
        "POST does the same.",
        "tags": ["System"],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "generation": {"type": "integer"},
                        "elapsed_ms": {"type": "number"},
                    },
                },
                "the new generation serves",
            ),
            "401": _UNAUTHORIZED,
            "500": _error(
                "the new code failed to import (details: the errors); the old "
                "generation keeps serving"
            ),
        },
    },
    ("/sys/status", "get"): {
        "summary": "The pool: generation, workers, queue, restarts, uptime",
        "tags": ["System"],
        "responses": {
            "200": _json({"type": "object"}, "the status (docs/operations.md)"),
            "401": _UNAUTHORIZED,
        },
    },
    ("/health_check", "get"): {
        "summary": "Liveness: the server answers",
        "tags": ["System"],
        "security": [],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "status": {"const": "ok"},
                        "generation": {"type": "integer"},
                    },
                },
                "alive",
            )
        },
    },
    ("/ready", "get"): {
        "summary": "Readiness: a generation serves and, with the bus on, Redis answers",
        "tags": ["System"],
        "security": [],
        "responses": {
            "200": _json({"type": "object"}, "ready"),
            "503": _json({"type": "object"}, "not ready: names what is not"),
        },
    },
    ("/metrics", "get"): {
        "summary": "Prometheus metrics (text format 0.0.4)",
        "tags": ["System"],
        "responses": {
            "200": {
                "description": "the metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": _UNAUTHORIZED,
        },
    },
    ("/openrpc.json", "get"): {
        "summary": "The OpenRPC document of the JSON-RPC methods (same as rpc.discover)",
        "tags": ["Discovery"],
        "responses": {
            "200": _json({"type": "object"}, "OpenRPC 1.3.2"),
            "401": _UNAUTHORIZED,
            "503": _error("no worker could build it now"),
        },
    },
    ("/openapi.json", "get"): {
        "summary": "This document: the HTTP routes (OpenAPI 3.1)",
        "tags": ["Discovery"],
        "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), "401": _UNAUTHORIZED},
    },
    ("/docs", "get"): {
        "summary": "The page to browse and try the methods and routes (works offline)",
        "tags": ["Discovery"],
        "security": [],
        "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
        },
    },
    ("/api/flow", "post"): {
        "summary": "Start a flow on a live bus peer and wait for its ack",
        "tags": ["Flows"],
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {
                    "schema": _ref("FlowStart"),
                    "example": {"project": "demo", "flow": "welcome", "params": {}},
                }
            },
        },
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "invoke_id": {"type": "string"},
                        "peer": {"type": "string"},
                        "ack": {"type": "integer"},
                        "msg": {},
                    },
                },
                "the peer started the flow (ack 1)",
            ),
            "400": _error("the body fails the schema (details: each error)"),
            "401": _UNAUTHORIZED,
            "404": _error("no live peer matches"),
            "502": _error("the peer answered ack != 1"),
            "503": _error("the bus is off or Redis is unreachable"),
            "504": _error("no ack within FLOW_ACK_TIMEOUT seconds"),
        },
    },
    ("/api/jobs", "get"): {
        "summary": "Every scheduled job",
        "tags": ["Jobs"],
        "responses": {
            "200": _json(
                {"type": "object", "properties": {"jobs": {"type": "array", "items": _ref("Job")}}},
                "the jobs",
            ),
            "401": _UNAUTHORIZED,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs", "post"): {
        "summary": "Add a job: an RPC method, its params and one trigger",
        "tags": ["Jobs"],
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {
                    "schema": _ref("JobSpec"),
                    "example": {
                        "id": "nightly",
                        "method": "echo",
                        "params": ["hi"],
                        "cron": "0 3 * * *",
                    },
                }
            },
        },
        "responses": {
            "201": _json(_ref("Job"), "added (Location: /api/jobs/{id})"),
            "400": _error("the spec fails the schema (details: each error)"),
            "401": _UNAUTHORIZED,
            "409": _error("a job with this id exists"),
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs/{}", "get"): {
        "summary": "One job",
        "tags": ["Jobs"],
        "responses": {
            "200": _json(_ref("Job"), "the job"),
            "401": _UNAUTHORIZED,
            "404": _NO_JOB,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs/{}", "delete"): {
        "summary": "Remove a job",
        "tags": ["Jobs"],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "deleted": {"const": True}},
                },
                "removed",
            ),
            "401": _UNAUTHORIZED,
            "404": _NO_JOB,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs/{}/pause", "post"): {
        "summary": "Pause a job (no more runs until resumed)",
        "tags": ["Jobs"],
        "responses": {
            "200": _json(_ref("Job"), "paused"),
            "401": _UNAUTHORIZED,
            "404": _NO_JOB,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs/{}/resume", "post"): {
        "summary": "Resume a paused job",
        "tags": ["Jobs"],
        "responses": {
            "200": _json(_ref("Job"), "resumed"),
            "401": _UNAUTHORIZED,
            "404": _NO_JOB,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/jobs/{}/run", "post"): {
        "summary": "Run a job now on this instance",
        "tags": ["Jobs"],
        "responses": {
            "202": _json(_ref("Job"), "a run started"),
            "401": _UNAUTHORIZED,
            "404": _NO_JOB,
            "503": _NO_SCHEDULER,
        },
    },
    ("/api/deadletters", "get"): {
        "summary": "The dead letters, newest first: bus entries given up after max_deliveries",
        "description": "Query: `limit` (1-500, default 50), `before` (an entry id, exclusive; "
        "the `next_before` of the previous page).",
        "tags": ["Bus"],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "deadletters": {"type": "array", "items": _ref("DeadLetter")},
                        "total": {"type": "integer"},
                        "replayed_total": {"type": "integer"},
                        "next_before": {"type": ["string", "null"]},
                    },
                },
                "one page",
            ),
            "400": _error("a bad limit or before"),
            "401": _UNAUTHORIZED,
            "503": _NO_BUS,
        },
    },
    ("/api/deadletters/{}", "get"): {
        "summary": "One dead letter",
        "tags": ["Bus"],
        "responses": {
            "200": _json(_ref("DeadLetter"), "the dead letter"),
            "401": _UNAUTHORIZED,
            "404": _NO_DEAD_LETTER,
            "503": _NO_BUS,
        },
    },
    ("/api/deadletters/{}/replay", "post"): {
        "summary": "Put a dead letter back on the request stream (same data and reply_to)",
        "tags": ["Bus"],
        "requestBody": {
            "required": False,
            "content": {
                _JSON: {"schema": REPLAY_SCHEMA, "example": {"timeout_ms": 5000}},
            },
        },
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "entry_id": {"type": "string"},
                        "replayed_as": {"type": "string"},
                        "deadline_ms": {"type": ["integer", "null"]},
                    },
                },
                "replayed as a new request entry",
            ),
            "400": _error("the body does not match the schema"),
            "401": _UNAUTHORIZED,
            "404": _NO_DEAD_LETTER,
            "503": _NO_BUS,
        },
    },
    ("/api/deadletters/{}", "delete"): {
        "summary": "Drop a dead letter",
        "tags": ["Bus"],
        "responses": {
            "200": _json({"type": "object"}, "dropped"),
            "401": _UNAUTHORIZED,
            "404": _NO_DEAD_LETTER,
            "503": _NO_BUS,
        },
    },
}
OPERATIONS[("/sys/reset", "post")] = OPERATIONS[("/sys/reset", "get")]

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_LITERAL_ALTERNATIVES = re.compile(r"[A-Za-z0-9_-]+(\|[A-Za-z0-9_-]+)*\Z")


def _top_level_groups(pattern: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each top-level capturing group of a regular expression."""
    groups: list[tuple[int, int]] = []
    depth = 0
    start = 0
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            if depth == 0:
                start = index
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and not pattern.startswith("(?", start):
                groups.append((start, index + 1))
        index += 1
    return groups


def _serves(handler: type[tornado.web.RequestHandler], method: str) -> bool:
    """Whether a handler class answers ``method``: it defines it with a function named after an
    HTTP method (``post = get`` counts; a refusal such as ``put = _wrong_method`` does not)."""
    function = getattr(handler, method)
    return function is not getattr(tornado.web.RequestHandler, method) and (
        getattr(function, "__name__", "") in HTTP_METHODS
    )


def _argument_names(target: Any) -> list[str]:
    """The path arguments of a handler class's methods (after ``self``), else []."""
    if not (inspect.isclass(target) and issubclass(target, tornado.web.RequestHandler)):
        return []
    for method in HTTP_METHODS:
        if _serves(target, method):
            return list(inspect.signature(getattr(target, method)).parameters)[1:]
    return []


def path_templates(pattern: str, target: Any = None) -> list[str]:
    """The OpenAPI path templates of a route's regular expression.

    Args:
        pattern: the route's expression, e.g. ``r"/api/jobs/([A-Za-z0-9._-]+)/(pause|run)"``.
        target: the handler class: its method's argument names name the parameters.

    Returns:
        E.g. ``["/api/jobs/{job_id}/pause", "/api/jobs/{job_id}/run"]``: one path per
        combination of literal alternatives; other groups are ``{argument}`` (``{param1}``...
        without a handler). ``^``, ``$`` and backslash escapes are dropped.
    """
    pattern = pattern.removeprefix("^").removesuffix("$")
    names = _argument_names(target)
    pieces: list[list[str]] = []
    last = 0
    for number, (start, end) in enumerate(_top_level_groups(pattern)):
        pieces.append([pattern[last:start]])
        inner = pattern[start + 1 : end - 1]
        if _LITERAL_ALTERNATIVES.match(inner):
            pieces.append(inner.split("|"))
        else:
            name = names[number] if number < len(names) else f"param{number + 1}"
            pieces.append(["{" + name + "}"])
        last = end
    pieces.append([pattern[last:]])
    return [re.sub(r"\\(.)", r"\1", "".join(parts)) for parts in itertools.product(*pieces)]


def _methods_of(target: Any, template: str) -> list[str]:
    """The HTTP methods of a route: those its handler class defines; for another kind of
    target (a delegate), those :data:`OPERATIONS` describes for the path."""
    if inspect.isclass(target) and issubclass(target, tornado.web.RequestHandler):
        # methods of the path served ahead of the application (POST /rpc: the router's delegate)
        routed = getattr(target, "routed_methods", ())
        return [m for m in HTTP_METHODS if _serves(target, m) or m in routed]
    key = _PLACEHOLDER.sub("{}", template)
    return [method for method in HTTP_METHODS if (key, method) in OPERATIONS]


def rules_of(application: tornado.web.Application) -> list[RouteRule]:
    """The path rules of a Tornado application, in order: ``[(regex, target, kwargs)]``.

    Rules matched on something else than the path alone (e.g. the browser redirect of
    ``GET /``) give their ``openapi_rules`` when the matcher has that attribute.
    """
    found: list[RouteRule] = []
    for rule in application.wildcard_router.rules:
        matcher = rule.matcher
        if isinstance(matcher, tornado.routing.PathMatches):
            found.append((matcher.regex.pattern, rule.target, dict(rule.target_kwargs)))
        else:
            found.extend(getattr(matcher, "openapi_rules", ()))
    return found


def _operation(template: str, method: str, target: Any) -> dict[str, Any]:
    described = OPERATIONS.get((_PLACEHOLDER.sub("{}", template), method))
    if described is not None:
        operation = dict(described)
    else:
        doc = inspect.getdoc(target) or ""
        operation = {
            "summary": doc.split("\n", 1)[0] or f"{method.upper()} {template}",
            "responses": {"default": {"description": "see docs/protocol.md"}},
            "x-undocumented": True,
        }
    if getattr(target, "requires_auth", True) is False:
        operation["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PLACEHOLDER.findall(template)
        for name in [name[1:-1]]
    ]
    if parameters:
        operation["parameters"] = parameters
    operation["operationId"] = method + re.sub(r"[^A-Za-z0-9]+", "_", template).rstrip("_")
    return operation


def build_document(
    rules: Iterable[RouteRule], title: str = "sbusr", version: str = "0"
) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of a route table.

    Args:
        rules: ``(regex, target, kwargs)`` per route (see :func:`rules_of`).
        title: ``info.title``.
        version: ``info.version`` (the server's version).

    Returns:
        ``{"openapi": "3.1.0", "info", "paths": {template: {method: Operation}},
        "components", "security"}``; paths in table order, each route's methods in
        :data:`HTTP_METHODS` order. Never raises for an unknown route (see the module doc).
    """
    paths: dict[str, dict[str, Any]] = {}
    for pattern, target, _kwargs in rules:
        for template in path_templates(pattern, target):
            item = paths.setdefault(template, {})
            for method in _methods_of(target, template):
                item.setdefault(method, _operation(template, method, target))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "The HTTP routes of sbusr. The JSON-RPC methods are in "
            "/openrpc.json (OpenRPC); the page /docs shows both.",
        },
        "paths": {path: item for path, item in paths.items() if item},
        "components": _COMPONENTS,
        "security": [{"bearer": []}],
    }
