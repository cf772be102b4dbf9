"""HTTP connections under limits: time-outs, a ceiling, accept back-off, stalled output, 413.

:class:`GuardedHTTPServer` is Tornado's :class:`~tornado.httpserver.HTTPServer` with the
limits of :class:`ConnectionLimits` (docs/operations.md, "Limits"). What Tornado offers is
used as it is; the rest is added here:

=======================================  =====================================================
limit                                    how
=======================================  =====================================================
header time-out (a new connection)       a sweep (every :data:`SWEEP_INTERVAL_S`, or a quarter
                                         of the shortest time-out) closes a connection whose
                                         first request's headers are not complete in time
keep-alive time-out (between requests)   the sweep closes a connection idle that long after
                                         its last response
body time-out                            the sweep closes a connection whose request's body
                                         is not complete in time
write time-out                           the sweep closes a connection whose unsent output
                                         made no progress
unsent output ceiling                    the sweep closes at once a connection whose unsent
                                         output is over ``max_unsent_bytes`` and stalled
connection ceiling                       at ``max_connections``, a new connection evicts the
                                         connection idle the longest; when none is idle, the
                                         one sending its request body the longest (a slow
                                         sender cannot hold a slot for the whole body
                                         time-out); none of either: it is closed at once.
                                         Counted and logged once per interval
accept errors (EMFILE, ENFILE, ...)      the listening socket is left alone for a growing
                                         delay instead of failing on every loop turn
body over ``max_body_bytes``             413 JSON in every case (see :class:`_GuardDelegate`)
broken body framing                      400 JSON, where Tornado answers a bare 400
=======================================  =====================================================

The time-outs are the sweep's rather than Tornado's own (``idle_connection_timeout``,
``body_timeout``): Tornado arms a timer and wraps the read of every request in a task of its
own for them, which cost ~10 % of the CPU of a small request; the sweep costs one pass over
the open connections per interval.

Tornado reads a connection's next request only once the response before it is written to
the socket, so a client that pipelines requests and never reads holds at most one response
in server memory; the write time-out and the unsent output ceiling close it, which releases
that response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import re
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from email.utils import formatdate
from typing import Any

import tornado
import tornado.gen
import tornado.httpserver
import tornado.iostream
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from tornado.ioloop import IOLoop, PeriodicCallback

from server.http.access_log import log_access
from server.http.base import REQUEST_ID_HEADER, bearer_refusal, request_id_from_headers
from server.http.cors import CorsPolicy
from server.http.errors import RestError, error_body
from server.limit_counters import counters
from settings import Settings

__all__ = [
    "ACCEPT_BACKOFF_MAX_S",
    "ConnectionLimits",
    "GuardedHTTPServer",
    "SWEEP_INTERVAL_S",
    "connection_limits",
    "default_max_connections",
    "descriptor_limit",
]

logger = logging.getLogger(__name__)

#: How often open connections are checked for stalled output, seconds; refusals and accept
#: errors are logged at most once per :data:`REPORT_INTERVAL_S`.
SWEEP_INTERVAL_S = 1.0
REPORT_INTERVAL_S = 10.0

#: Longest pause of the accept loop after an accept error, seconds (it starts at 10 ms).
ACCEPT_BACKOFF_MAX_S = 1.0
_ACCEPT_BACKOFF_MIN_S = 0.01
_ACCEPTS_PER_TURN = 128
_ACCEPT_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

#: Descriptors left for everything but HTTP connections (workers' pipes, Redis, the
#: database, logs, the listening sockets): at least this many, or 1/8 of the limit.
RESERVED_DESCRIPTORS_MIN = 128

#: The descriptor limit assumed when the process has none.
_UNLIMITED_DESCRIPTORS = 65536

#: Tornado's own body size check is off: :class:`_GuardDelegate` enforces the limit.
_NO_TORNADO_BODY_LIMIT = 1 << 62

#: The sweep runs at least this often, seconds, however short the time-outs are.
_SWEEP_INTERVAL_MIN_S = 0.05

_SERVER = "TornadoServer/" + tornado.version
_REASONS = {400: "Bad Request", 401: "Unauthorized", 413: "Content Too Large"}
_DIGITS = re.compile(r"[0-9]{1,18}\Z")


def descriptor_limit() -> int:
    """The soft limit of open file descriptors of this process (``RLIMIT_NOFILE``)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _UNLIMITED_DESCRIPTORS if soft == resource.RLIM_INFINITY else soft


def default_max_connections(descriptors: int) -> int:
    """The default connection ceiling for a descriptor limit.

    Args:
        descriptors: the process's descriptor limit (see :func:`descriptor_limit`).

    Returns:
        ``descriptors`` less a reserve of ``max(128, descriptors // 8)`` (at least 1): 896
        for the usual 1,024.
    """
    return max(1, descriptors - max(RESERVED_DESCRIPTORS_MIN, descriptors // 8))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """The limits of the HTTP connections (settings of the same names, docs/operations.md).

    Attributes:
        header_timeout_s: a new connection's first request headers must be complete within
            this, seconds.
        keepalive_timeout_s: an idle connection waits this long for its next request's
            headers, seconds.
        body_timeout_s: a request body must be complete within this, seconds.
        write_timeout_s: a connection whose unsent output makes no progress this long is
            closed, seconds.
        max_unsent_bytes: a connection whose unsent output is over this and made no progress
            since the last sweep is closed, bytes.
        max_connections: open connections at most; see the module doc for what happens above.
        max_body_bytes: largest request body, bytes (413 beyond).
    """

    header_timeout_s: float
    keepalive_timeout_s: float
    body_timeout_s: float
    write_timeout_s: float
    max_unsent_bytes: int
    max_connections: int
    max_body_bytes: int


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The connection limits of ``settings``; the ceiling derived from the descriptor limit
    (:func:`default_max_connections`) when ``max_connections`` is unset."""
    max_connections = settings.max_connections or default_max_connections(descriptor_limit())
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        keepalive_timeout_s=settings.keepalive_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        write_timeout_s=settings.write_timeout_s,
        max_unsent_bytes=settings.max_unsent_bytes,
        max_connections=max_connections,
        max_body_bytes=settings.max_body_bytes,
    )


@dataclasses.dataclass(eq=False)
class _ConnectionState:
    """What the server tracks of one connection."""

    stream: tornado.iostream.IOStream
    busy: bool = False  # a request's headers arrived; its response is not written yet
    idle_since_s: float = 0.0
    body_since_s: float | None = None  # its request's headers arrived, its body is not complete
    written_bytes: int = 0
    stalled_since_s: float | None = None
    requests: int = 0  # requests it waited for (1: its first)


class _Reporter:
    """Counts events and logs them as one warning per :data:`REPORT_INTERVAL_S`."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.total = 0
        self.last_report_s = 0.0

    def add(self, now_s: float, *details: object) -> None:
        """Count one event; log the count (and ``details``) when the interval has passed."""
        self.count += 1
        self.total += 1
        if now_s - self.last_report_s >= REPORT_INTERVAL_S:
            logger.warning(self.message, self.count, *details)
            self.count = 0
            self.last_report_s = now_s


class _Acceptor:
    """Accepts connections on one listening socket; backs off on accept errors."""

    def __init__(
        self, sock: socket.socket, on_connection: Callable[[socket.socket, Any], None]
    ) -> None:
        self.sock = sock
        self.on_connection = on_connection
        self.io_loop = IOLoop.current()
        self.delay_s = _ACCEPT_BACKOFF_MIN_S
        self.resume_handle: object | None = None
        self.errors = _Reporter("accept failed %d times (%s); pausing accepts up to %.2f s")
        self.io_loop.add_handler(sock, self._ready, IOLoop.READ)

    def _ready(self, fd: Any, events: int) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _ACCEPT_ERRORS:
                    raise
                self._back_off(exc)
                return
            self.delay_s = _ACCEPT_BACKOFF_MIN_S
            self.on_connection(connection, address)

    def _back_off(self, exc: OSError) -> None:
        counters.accept_errors += 1
        self.errors.add(time.monotonic(), exc.strerror, self.delay_s)
        self.io_loop.remove_handler(self.sock)
        self.resume_handle = self.io_loop.call_later(self.delay_s, self._resume)
        self.delay_s = min(self.delay_s * 2, ACCEPT_BACKOFF_MAX_S)

    def _resume(self) -> None:
        self.resume_handle = None
        self.io_loop.add_handler(self.sock, self._ready, IOLoop.READ)

    def remove(self) -> None:
        """Stop accepting (the socket is closed by the caller)."""
        if self.resume_handle is not None:
            self.io_loop.remove_timeout(self.resume_handle)
            self.resume_handle = None
        else:
            self.io_loop.remove_handler(self.sock)


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with the limits of :class:`ConnectionLimits` (the module doc).

    Built as ``GuardedHTTPServer(router, limits=..., auth_token=..., cors=...,
    access_log=...)``; any other keyword goes to :class:`tornado.httpserver.HTTPServer` (the
    time-outs and the body size are set from ``limits``).

    Attributes:
        limits: the limits in force.
        refusals: connections closed at once at the ceiling (a count since start).
        evictions: idle connections closed to make room for a new one (since start).
        open_connections: connections open now.
    """

    def initialize(  # type: ignore[override]
        self,
        request_callback: Any,
        *,
        limits: ConnectionLimits,
        auth_token: str | None = None,
        cors: CorsPolicy | None = None,
        access_log: bool = True,
        **kwargs: Any,
    ) -> None:
        """Take the router, the limits, the bearer token the server requires (a caller
        without it is answered 401 rather than 413), who may call across origins (the CORS
        headers of these answers) and whether these answers get an access log line."""
        super().initialize(request_callback, max_body_size=_NO_TORNADO_BODY_LIMIT, **kwargs)
        self.conn_params.header_timeout = None  # the sweep's (module doc)
        self.conn_params.body_timeout = None
        self.limits = limits
        self.auth_token = auth_token
        self.cors = cors or CorsPolicy(())
        self.access_log = access_log
        self._states: dict[object, _ConnectionState] = {}
        self._lingering: set[tornado.iostream.IOStream] = set()
        self._refusal_reporter = _Reporter(
            "refused %d connections at the ceiling of %d (SBUSR_MAX_CONNECTIONS)"
        )
        self._eviction_reporter = _Reporter(
            "closed %d idle connections to make room at the ceiling of %d"
        )
        self._slow_body_reporter = _Reporter(
            "closed %d connections still sending a request body to make room at the ceiling of %d"
        )
        self._stall_reporter = _Reporter("closed %d connections whose output stalled (%s)")
        shortest_s = min(limits.header_timeout_s, limits.keepalive_timeout_s, limits.body_timeout_s)
        interval_s = max(_SWEEP_INTERVAL_MIN_S, min(SWEEP_INTERVAL_S, shortest_s / 4))
        self._sweeper = PeriodicCallback(self._sweep, interval_s * 1000.0)

    @property
    def refusals(self) -> int:
        """Connections closed at once at the ceiling since start."""
        return self._refusal_reporter.total

    @property
    def evictions(self) -> int:
        """Idle connections, and connections still sending a body, closed to make room for a
        new one since start."""
        return self._eviction_reporter.total + self._slow_body_reporter.total

    @property
    def open_connections(self) -> int:
        """Connections open now (those closing after a 413 included)."""
        return len(self._connections) + len(self._lingering)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Accept connections on ``sockets`` (see :class:`_Acceptor`); start the sweep."""
        for sock in sockets:
            acceptor = _Acceptor(sock, self._on_connection)
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = acceptor.remove
        if not self._sweeper.is_running():
            self._sweeper.start()

    def stop(self) -> None:
        """Stop accepting and sweeping (open connections stay: :meth:`close_all_connections`)."""
        self._sweeper.stop()
        super().stop()

    async def close_all_connections(self) -> None:
        """Close every connection, those closing after a 413 first."""
        for stream in list(self._lingering):
            stream.close()
        await super().close_all_connections()

    def _on_connection(self, connection: socket.socket, address: Any) -> None:
        if self.open_connections >= self.limits.max_connections and not self._make_room():
            connection.close()
            counters.connections_refused += 1
            self._refusal_reporter.add(time.monotonic(), self.limits.max_connections)
            return
        self._handle_connection(connection, address)

    def _make_room(self) -> bool:
        """Close the connection that waits the longest for a request or, when none does, the
        one that has been sending its request body the longest; False when there is neither
        (every connection runs a request or writes its response)."""
        idle = [state for state in self._states.values() if not state.busy]
        if idle:
            oldest = min(idle, key=lambda state: state.idle_since_s)
            reporter = self._eviction_reporter
        else:
            receiving = [
                state
                for state in self._states.values()
                if state.body_since_s is not None and not state.stream.closed()
            ]
            if not receiving:
                return False
            oldest = min(receiving, key=lambda state: state.body_since_s or 0.0)
            reporter = self._slow_body_reporter
        oldest.busy = True  # closing: not picked again
        oldest.body_since_s = None
        oldest.stream.close()
        counters.connections_evicted += 1
        reporter.add(time.monotonic(), self.limits.max_connections)
        return True

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        """A connection waits for its next request: mark it idle, wrap the request's delegate."""
        state = self._states.get(server_conn)
        now_s = time.monotonic()
        if state is None and isinstance(server_conn, HTTP1ServerConnection):
            state = self._states[server_conn] = _ConnectionState(server_conn.stream)
        if state is not None:
            state.busy = False
            state.idle_since_s = now_s
            state.requests += 1
            state.body_since_s = None
        inner = super().start_request(server_conn, request_conn)
        return _GuardDelegate(self, state, request_conn, inner)

    def on_close(self, server_conn: object) -> None:
        """A connection ended: forget it."""
        self._states.pop(server_conn, None)
        super().on_close(server_conn)

    def _sweep(self) -> None:
        """Close connections past a time-out (header, keep-alive, body) and those whose output
        stalled (write time-out, unsent output ceiling); count each."""
        now_s = time.monotonic()
        limits = self.limits
        for state in list(self._states.values()):
            stream = state.stream
            if stream.closed():
                continue
            if not state.busy:
                first = state.requests <= 1
                timeout_s = limits.header_timeout_s if first else limits.keepalive_timeout_s
                if now_s - state.idle_since_s >= timeout_s:
                    state.busy = True  # closing: not evicted again
                    stream.close()
                    counters.count_closed("header_timeout" if first else "keepalive_timeout")
                continue
            if (
                state.body_since_s is not None
                and now_s - state.body_since_s >= limits.body_timeout_s
            ):
                stream.close()
                counters.count_closed("body_timeout")
                continue
            # IOStream's own byte counters: queued by write() and handed to the socket
            unsent = stream._total_write_index - stream._total_write_done_index
            written = stream._total_write_done_index
            if unsent == 0 or written != state.written_bytes or state.stalled_since_s is None:
                state.written_bytes = written
                state.stalled_since_s = now_s if unsent else None
                continue
            stalled_s = now_s - state.stalled_since_s
            if stalled_s >= limits.write_timeout_s:
                reason, counted_as = "SBUSR_WRITE_TIMEOUT_S", "write_timeout"
            elif unsent > limits.max_unsent_bytes:
                reason, counted_as = "SBUSR_MAX_UNSENT_BYTES", "unsent_output"
            else:
                continue
            stream.close()
            counters.count_closed(counted_as)
            self._stall_reporter.add(now_s, reason)

    def linger(self, stream: tornado.iostream.IOStream, response: bytes, body_bytes: int) -> None:
        """Send ``response`` on a detached ``stream``, then read and drop up to ``body_bytes``
        of the request body (within the body time-out) and close: the client, still sending,
        can read the response instead of a reset."""
        self._lingering.add(stream)
        task = asyncio.get_running_loop().create_task(self._linger(stream, response, body_bytes))
        task.add_done_callback(lambda _: self._lingering.discard(stream))

    async def _linger(
        self, stream: tornado.iostream.IOStream, response: bytes, body_bytes: int
    ) -> None:
        deadline_s = IOLoop.current().time() + self.limits.body_timeout_s
        try:
            await stream.write(response)
            stream.socket.shutdown(socket.SHUT_WR)
            while body_bytes > 0:
                chunk = await tornado.gen.with_timeout(
                    deadline_s,
                    stream.read_bytes(min(body_bytes, 1 << 16), partial=True),
                    quiet_exceptions=tornado.iostream.StreamClosedError,
                )
                body_bytes -= len(chunk)
        except (tornado.iostream.StreamClosedError, TimeoutError, OSError):
            pass  # the client left, or the body time-out passed: closed either way
        finally:
            stream.close()


class _GuardDelegate(HTTPMessageDelegate):
    """Wraps the delegate of one request: marks the connection busy, enforces the body limit.

    A body over ``max_body_bytes`` is answered 413 with the JSON error body, whatever its
    framing: a declared ``Content-Length`` over the limit at once (then the rest of the body
    is read and dropped within the body time-out, so that a client still sending can read the
    answer, and the connection closed); a chunked body once it is complete (what passes the
    limit is read and dropped, within the body time-out; the connection is kept). The wrapped
    delegate never sees such a body: it is told the connection closed. Request bodies are
    never decompressed, so a gzip body counts as sent. When the server has a token and the
    request does not carry it, the answer is the 401 of every route instead (the limit is not
    told to strangers).
    """

    def __init__(
        self,
        server: GuardedHTTPServer,
        state: _ConnectionState | None,
        request_conn: HTTPConnection,
        inner: HTTPMessageDelegate,
    ) -> None:
        self.server = server
        self.state = state
        self.request_conn = request_conn
        self.inner = inner
        self.start_line: RequestStartLine | None = None
        self.headers: HTTPHeaders | None = None
        self.started_s = 0.0
        self.size = 0
        self.discarding = False
        self.answered = False
        self.inner_released = False

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> Awaitable[None] | None:
        """Mark the connection busy; refuse a body whose framing is broken or whose declared
        length is over the limit; else pass on."""
        state = self.state
        if state is not None:
            state.busy = True
            state.body_since_s = time.monotonic()
        self.started_s = time.time()
        if isinstance(start_line, RequestStartLine):
            self.start_line = start_line
        self.headers = headers
        framing_error = _framing_error(headers)
        if framing_error is not None:
            self._refuse_and_close(RestError(400, framing_error), 1 << 16)
            return None
        declared = int(headers.get("Content-Length", "0").partition(",")[0].strip() or "0")
        if declared > self.server.limits.max_body_bytes:
            self._refuse_and_close(self._too_large(), declared)
            return None
        return self.inner.headers_received(start_line, headers)

    def _refuse_and_close(self, refusal: RestError, body_bytes: int) -> None:
        """Answer ``refusal`` on the detached stream, drop up to ``body_bytes`` of the body
        (:meth:`GuardedHTTPServer.linger`), close."""
        self.discarding = self.answered = self.inner_released = True
        if self.state is not None:
            self.state.body_since_s = None  # lingering: no longer a request slot
        if isinstance(self.request_conn, HTTP1Connection):
            stream = self.request_conn.detach()
            self.server.linger(stream, self._response_bytes(refusal, close=True), body_bytes)

    def _too_large(self) -> RestError:
        """The 413 of this request, or the 401 of a caller without the token."""
        request_headers = self.headers if self.headers is not None else HTTPHeaders()
        limit = self.server.limits.max_body_bytes
        return bearer_refusal(
            self.server.auth_token, request_headers.get("Authorization")
        ) or RestError(413, f"request body over {limit} bytes")

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Pass a body chunk on while the body is under the limit; past it, drop it."""
        self.size += len(chunk)
        limit = self.server.limits.max_body_bytes
        if not self.discarding:
            if self.size <= limit:
                return self.inner.data_received(chunk)
            self.discarding = True
            self._release_inner()
        return None

    def finish(self) -> None:
        """The body is complete: answer 413 if it was over the limit, else pass on."""
        if self.state is not None:
            self.state.body_since_s = None
        if self.discarding:
            if not self.answered:
                self._answer(self._too_large())
            return
        self.inner.finish()

    def on_connection_close(self) -> None:
        """The connection closed before the request was complete: tell the wrapped delegate."""
        if self.state is not None:
            self.state.body_since_s = None
        self._release_inner()

    def _release_inner(self) -> None:
        if not self.inner_released:
            self.inner_released = True
            self.inner.on_connection_close()

    def _answer(self, refusal: RestError) -> None:
        self.answered = True
        start_line, headers, body = self._response(refusal, close=False)
        self.request_conn.write_headers(start_line, headers, body)
        self.request_conn.finish()

    def _response(
        self, refusal: RestError, close: bool
    ) -> tuple[ResponseStartLine, HTTPHeaders, bytes]:
        """The refusal's status line, headers and JSON body; writes its access log line."""
        request_headers = self.headers if self.headers is not None else HTTPHeaders()
        status = refusal.status_code
        body = error_body(status, refusal.message, refusal.details)
        request_id = request_id_from_headers(request_headers)
        now_s = time.time()
        headers = HTTPHeaders()
        headers["Server"] = _SERVER
        headers["Content-Type"] = "application/json"
        headers["Date"] = formatdate(now_s, usegmt=True)
        headers[REQUEST_ID_HEADER] = request_id
        headers["Content-Length"] = str(len(body))
        for name, value in refusal.headers.items():
            headers[name] = value
        cors = self.server.cors
        if cors.enabled:
            for name, value in cors.response_headers(request_headers.get("Origin")):
                headers[name] = value
        if close:
            headers["Connection"] = "close"
        if self.server.access_log and self.start_line is not None:
            log_access(
                self.start_line.method,
                self.start_line.path.partition("?")[0],
                status,
                (now_s - self.started_s) * 1000.0,
                (),
                request_id,
            )
        start_line = ResponseStartLine("HTTP/1.1", status, _REASONS[status])
        return start_line, headers, body

    def _response_bytes(self, refusal: RestError, close: bool) -> bytes:
        """The whole response of :meth:`_response` as bytes, for a detached stream."""
        start_line, headers, body = self._response(refusal, close)
        lines = [f"{start_line.version} {start_line.code} {start_line.reason}"]
        lines.extend(f"{name}: {value}" for name, value in headers.get_all())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _framing_error(headers: HTTPHeaders) -> str | None:
    """Why the body framing of a request is broken (RFC 9112 §6), or None when it is sound.

    Tornado would answer these with a bare 400 without a body; the server answers them with
    the JSON error body instead: a ``Content-Length`` that is not a number (or lists unequal
    numbers), ``Transfer-Encoding`` with ``Content-Length``, or another transfer coding than
    ``chunked``.
    """
    length = headers.get("Content-Length")
    if length is not None:
        values = {piece.strip() for piece in length.split(",")}
        if len(values) != 1 or not _DIGITS.match(next(iter(values))):
            return f"Content-Length {length!r} is not one number of bytes"
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        if length is not None:
            return "a request may not have both Transfer-Encoding and Content-Length"
        if coding.lower() != "chunked":
            return f"Transfer-Encoding {coding!r} is not supported: use chunked"
    return None
