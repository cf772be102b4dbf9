"""The REST routes' spans, end to end: a real server (SBUSR_TRACING=1) exports to an OTLP
receiver on loopback; each request to a ``tornado.web`` handler is one SERVER span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otlp_receiver import KIND_SERVER, OtlpReceiver, ReceivedSpan
from tests.support import ServerProcess, StartServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def traced_server(start_server: StartServer, receiver: OtlpReceiver) -> ServerProcess:
    return start_server(env=receiver.environment())


def span_of(receiver: OtlpReceiver, request_id: str) -> ReceivedSpan:
    """The one exported span of the request ``request_id`` (waits for it)."""

    def mine(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [span for span in spans if span.attributes.get("sbusr.request_id") == request_id]

    (span,) = mine(receiver.wait_for_spans(lambda spans: bool(mine(spans))))
    return span


def test_a_rest_request_is_a_server_span_continuing_the_incoming_trace(
    traced_server: ServerProcess, receiver: OtlpReceiver
) -> None:
    headers = {"traceparent": TRACEPARENT, "X-Request-ID": "status-1"}
    assert traced_server.http.get("/sys/status", headers=headers).status_code == 200
    span = span_of(receiver, "status-1")
    assert span.name == "GET /sys/status"
    assert span.kind == KIND_SERVER
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, CALLER_SPAN_ID)
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.path"] == "/sys/status"
    assert span.attributes["http.route"] == "/sys/status"
    assert span.attributes["http.response.status_code"] == 200


def test_a_route_with_a_path_argument_is_named_by_its_template(
    traced_server: ServerProcess, receiver: OtlpReceiver
) -> None:
    headers = {"X-Request-ID": "missing-job"}
    assert traced_server.http.get("/api/jobs/nope", headers=headers).status_code == 404
    span = span_of(receiver, "missing-job")
    assert span.name == "GET /api/jobs/{job_id}"
    assert span.attributes["url.path"] == "/api/jobs/nope"
    assert span.attributes["http.response.status_code"] == 404
    assert span.parent_span_id == ""  # no traceparent: a trace of its own


def test_an_unknown_path_is_named_by_its_method_alone(
    traced_server: ServerProcess, receiver: OtlpReceiver
) -> None:
    headers = {"X-Request-ID": "no-route"}
    assert traced_server.http.delete("/no/such/route", headers=headers).status_code == 404
    span = span_of(receiver, "no-route")
    assert span.name == "DELETE"
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404


def test_a_refused_request_gets_its_span_with_the_status(
    start_server: StartServer, receiver: OtlpReceiver
) -> None:
    server = start_server(env={**receiver.environment(), "SBUSR_AUTH_TOKEN": "secret"})
    headers = {"X-Request-ID": "no-token"}
    assert server.http.get("/sys/status", headers=headers).status_code == 401
    span = span_of(receiver, "no-token")
    assert span.name == "GET /sys/status"
    assert span.attributes["http.response.status_code"] == 401
