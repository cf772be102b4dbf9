"""A tiny OTLP/HTTP trace receiver on loopback: what a traced server exports, decoded.

Start it, point the server at it (:meth:`OtlpReceiver.environment`), then wait for spans
with :meth:`OtlpReceiver.wait_for_spans`. Spans are kept as :class:`ReceivedSpan` (ids as
lowercase hex, attributes as plain values).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support import wait_for

__all__ = ["OtlpReceiver", "ReceivedSpan"]

#: OTLP's SpanKind numbers
KIND_SERVER = 2
KIND_CONSUMER = 5


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One exported span: name, kind (OTLP number), ids as hex, attributes as values."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


class _Handler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        received = [
            ReceivedSpan(
                name=span.name,
                kind=span.kind,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes={item.key: _value(item.value) for item in span.attributes},
                status_code=span.status.code,
            )
            for resource_spans in export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self.server.lock:
            self.server.spans.extend(received)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


class OtlpReceiver(ThreadingHTTPServer):
    """Receives ``POST /v1/traces`` (protobuf) on 127.0.0.1, in a thread of its own."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def environment(self) -> dict[str, str]:
        """The variables that make a server export its spans here, at once."""
        host, port = self.server_address[:2]
        return {
            "SBUSR_TRACING": "1",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{host!s}:{port}/v1/traces",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "sbusr-test",
        }

    def wait_for_spans(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 15.0
    ) -> list[ReceivedSpan]:
        """Poll until ``condition(spans received)`` holds; return the spans."""

        def check() -> list[ReceivedSpan] | None:
            with self.lock:
                spans = list(self.spans)
            return spans if condition(spans) else None

        spans: list[ReceivedSpan] = wait_for(check, timeout_s, message="the exported spans")
        return spans

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
