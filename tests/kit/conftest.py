"""Fixtures for the toolkit tests: a scripted local HTTP server and the real services.

Services (never fakes): Redis 127.0.0.1:6379 db 11, PostgreSQL 127.0.0.1:5432 db
``test``, MariaDB 127.0.0.1:3306 db ``test``, SQLite in a tmp dir. A service that
cannot be reached makes its tests FAIL with the reason.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import flushed_redis_db

REDIS_TEST_URL = os.environ.get("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
MARIADB_TEST_URL = os.environ.get(
    "KIT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
)
POSTGRES_TEST_URL = os.environ.get(
    "KIT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers by path; counts hits per path in ``server.hits``.

    ``/ok``                               200 "ok"
    ``/fail/<n>/<status>?retry_after=s``  ``status`` for the first n hits, then 200
    ``/status/<code>?retry_after=s``      always ``code``
    ``/hang``                             waits until the server stops (a time-out for the client)
    ``/echo``                             200 with the request headers as JSON
    """

    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.strip("/").split("/")
        with self.server.hits_lock:
            self.server.hits[parts.path] += 1
            hit = self.server.hits[parts.path]
        extra = {}
        if "retry_after" in query:
            extra["Retry-After"] = query["retry_after"][0]
        kind = segments[0]
        if kind == "ok":
            self._answer(200, b"ok")
        elif kind == "fail":
            failures, status = int(segments[1]), int(segments[2])
            if hit <= failures:
                self._answer(status, b"failing", extra)
            else:
                self._answer(200, b"ok")
        elif kind == "status":
            self._answer(int(segments[1]), b"status", extra)
        elif kind == "hang":
            self.server.stopping.wait(30)  # the client times out long before
            self.close_connection = True
        elif kind == "echo":
            self._answer(200, json.dumps(dict(self.headers.items())).encode())
        else:
            self._answer(404, b"no such script")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are expected here

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.hits: collections.Counter[str] = collections.Counter()
        self.hits_lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` made unique per call so hit counts start at 0."""
        unique = uuid.uuid4().hex[:8]
        split = urlsplit(path)
        query = f"?{split.query}" if split.query else ""
        return f"{self.base_url}{split.path}/{unique}{query}"

    def hits_for(self, url: str) -> int:
        with self.hits_lock:
            return self.hits[urlsplit(url).path]


@contextlib.contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    """A :class:`ScriptedServer` serving in a thread of its own until the block ends."""
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def http_server() -> Iterator[ScriptedServer]:
    with scripted_server() as server:
        yield server


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def table_name() -> str:
    """A table name unique to this test run (the test drops it)."""
    return _unique_name("kit_t")


def _require_database(url: str, label: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach it is a test failure
        pytest.fail(f"{label} is required at {url} but cannot be reached: {exc}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _require_database(MARIADB_TEST_URL, "MariaDB")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _require_database(POSTGRES_TEST_URL, "PostgreSQL")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kit-test.sqlite3'}"


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def any_database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per database kind."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of Redis db 11, flushed before and after the test."""
    yield from flushed_redis_db(REDIS_TEST_URL)


@pytest.fixture(autouse=True)
def _fresh_kit_settings() -> Iterator[None]:
    """Each test reads the ``SBUSR_*`` variables anew (``kit.config`` keeps them per process)."""
    from kit import config

    config.clear_cache()
    yield
    config.clear_cache()


@pytest.fixture(autouse=True)
def _fresh_kit_caches() -> Iterator[None]:
    """Each test starts and ends with no cached pools (they are closed)."""
    yield
    from kit import db, http
    from kit import redis as kit_redis

    db.dispose_all()
    kit_redis.close_all()
    http.close_all()
