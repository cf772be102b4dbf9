"""The route table and the mapping of domain errors to REST errors, without a server."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from executor.pool import Pool, ReloadFailed
from kit.jobs import JobSpecError
from server.bus.flow import BusUnreachable, FlowAckTimeout, FlowRejected, NoLivePeer
from server.http.app import Services, routes
from server.http.errors import RestError, rest_error_of
from server.jsonrpc import JsonRpcCore
from server.metrics import CallMetrics, Metrics
from server.openrpc_cache import DocumentUnavailable, OpenRpcCache
from server.scheduler.service import JobExists, JobNotFound
from settings import Settings
from wire.errors import CallTimeout, ServerBusy


@pytest.fixture
def services(tmp_path: Path) -> Services:
    pool = Pool(tmp_path, processes=1, max_tasks_per_child=0, queue_maxsize=3)  # never started
    return Services(
        pool=pool,
        core=JsonRpcCore(pool, 1.0, 4),
        documents=OpenRpcCache(pool),
        metrics=Metrics(pool, CallMetrics(), None),
        scheduler=None,
        flows=None,
    )


def test_every_route_gives_its_handler_exactly_the_kwargs_it_takes(services: Services) -> None:
    for pattern, handler, kwargs in routes(Settings(), services):
        signature = inspect.signature(handler.initialize)
        signature.bind(None, **kwargs)  # self, then the kwargs: TypeError if one is off
        assert {"self", *kwargs} == set(signature.parameters), pattern


def test_every_handler_that_requires_auth_takes_the_token(services: Services) -> None:
    for pattern, handler, kwargs in routes(Settings(auth_token="t"), services):
        if getattr(handler, "requires_auth", True):
            assert kwargs["auth_token"] == "t", pattern


@pytest.mark.parametrize(
    "error, status, message, details",
    [
        (
            ReloadFailed([{"module": "methods.x", "type": "SyntaxError", "message": "bad"}]),
            500,
            "the new code failed to import; the old generation keeps serving",
            [{"module": "methods.x", "type": "SyntaxError", "message": "bad"}],
        ),
        (NoLivePeer("no live peer 3:*"), 404, "no live peer 3:*", None),
        (
            FlowRejected({"invoke_id": "i", "peer": "3:7", "ack": 2, "msg": "no"}),
            502,
            "peer 3:7 answered ack 2: no",
            {"invoke_id": "i", "peer": "3:7", "ack": 2, "msg": "no"},
        ),
        (BusUnreachable("Redis is down"), 503, "Redis is down", None),
        (
            FlowAckTimeout("i", "3:7", 2.0),
            504,
            "peer 3:7 did not ack flow start i within 2.0 s",
            {"invoke_id": "i", "peer": "3:7"},
        ),
        (
            JobSpecError([{"path": "/cron", "message": "bad"}]),
            400,
            "invalid job",
            [{"path": "/cron", "message": "bad"}],
        ),
        (JobNotFound("nightly"), 404, "no job 'nightly'", None),
        (JobExists("nightly"), 409, "a job with id 'nightly' exists", None),
        (
            DocumentUnavailable(CallTimeout()),
            503,
            "cannot build the document",
            {"code": -32001, "message": "Call timed out"},
        ),
    ],
)
def test_domain_errors_map_to_their_rest_errors(
    error: Exception, status: int, message: str, details: Any
) -> None:
    rest = rest_error_of(error)
    assert rest is not None
    assert (rest.status_code, rest.message, rest.details) == (status, message, details)


def test_busy_is_503_with_retry_after() -> None:
    rest = rest_error_of(ServerBusy(data={"queue_maxsize": 3}))
    assert rest is not None
    assert (rest.status_code, rest.headers) == (503, {"Retry-After": "1"})


def test_rest_errors_are_themselves_and_other_errors_are_unmapped() -> None:
    own = RestError(418, "teapot")
    assert rest_error_of(own) is own
    assert rest_error_of(KeyError("x")) is None
    assert rest_error_of(ValueError("x")) is None
