"""Every setting of sbusr, with its default and its ``SBUSR_*`` environment variable.

The server builds one :class:`Settings` object at start with :func:`load` and hands it to
whoever needs it; nothing else reads ``os.environ``. The names and defaults follow the
"Settings" table of design.md. Units are part of the names: ``_s`` seconds, ``_ms``
milliseconds, ``_bytes`` bytes.

An invalid value stops the server at start with a :class:`SettingsError` that names the
variable and the value, e.g. ``SBUSR_PORT='http': expected an integer``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from executor.cpus import available_cpus
from wire.redact import MASK, redact_url

__all__ = ["Settings", "SettingsError", "load", "ENV_PREFIX", "unknown_variables"]

ENV_PREFIX = "SBUSR_"
PROJECT_DIR = Path(__file__).resolve().parent


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected an integer") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise ValueError("expected a number > 0")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _optional_text(text: str) -> str | None:
    return text or None


def _key_prefix(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError("expected a non-empty key prefix without spaces")
    return text


def _table_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,57}", text):
        raise ValueError("expected a table name: letters, digits, _ (at most 58)")
    return text


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError("expected 'text' or 'json'")
    return text


_ORIGIN = re.compile(r"https?://[^\s/,]+\Z")


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(
                f"{origin!r} is not an origin: expected scheme://host[:port], comma-separated, or *"
            )
    return origins


def _default_database_url() -> str:
    return "sqlite:///" + str(PROJECT_DIR / "data" / "sbusr.sqlite3")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings of one server process (see design.md, "Settings").

    Attributes:
        host: address the HTTP server binds (``SBUSR_HOST``), default ``127.0.0.1``.
        port: TCP port of the HTTP server (``SBUSR_PORT``), default 8080; 0 picks a free one.
        methods_dir: folder of the user's ``methods`` package (``SBUSR_METHODS_DIR``).
        pool_processes: worker processes per generation (``SBUSR_POOL_PROCESSES``), default
            the CPUs this process may use: its CPU affinity capped by its cgroup CPU quota
            (:func:`executor.cpus.available_cpus`).
        pool_maxtasksperchild: calls a worker serves before it is replaced
            (``SBUSR_POOL_MAXTASKSPERCHILD``), default 1000; 0 means never.
        queue_maxsize: calls that may wait for a free worker (``SBUSR_QUEUE_MAXSIZE``);
            beyond it calls are refused with -32003.
        worker_concurrency: most calls one worker runs at once (``SBUSR_WORKER_CONCURRENCY``),
            default 1024: ``async def`` methods as tasks on its event loop, plain functions in
            its threads; 1 runs one call at a time.
        rpc_timeout_s: time limit of one call in seconds (``SBUSR_RPC_TIMEOUT``), default 30.
        redis_url: Redis URL of the message bus (``SBUSR_REDIS_URL``); None: bus off.
        database_url: SQLAlchemy URL of the default database (``SBUSR_DATABASE_URL``).
        auth_token: bearer token required on every route but the probes (/health_check,
            /ready) and /docs (``SBUSR_AUTH_TOKEN``); None: no auth, and then only a loopback
            ``host`` may be bound unless ``allow_unauthenticated`` (protected mode).
        flow_ack_timeout_s: how long /api/flow waits for a peer's ack, seconds.
        notify_ttl_ms: life of a bus reply list after the reply is pushed, milliseconds.
        debug: put tracebacks into ``error.data`` (``SBUSR_DEBUG``).
        max_body_bytes: largest accepted HTTP request body, bytes (default 1 MiB).
        max_batch: largest accepted JSON-RPC batch, in requests (default 100).
        bus_prefix: prefix of every Redis key of the bus (``SBUSR_BUS_PREFIX``).
        claim_idle_ms: bus entries pending longer than this are reclaimed, milliseconds.
        max_deliveries: deliveries of a bus entry before it is dead-lettered.
        peer_ttl_ms: a bus peer is live while its heartbeat is younger, milliseconds.
        access_log: one log line per HTTP request (``SBUSR_ACCESS_LOG``).
        metrics: count calls and their latency for ``/metrics`` (``SBUSR_METRICS``); off,
            ``/metrics`` shows the pool's gauges only.
        log_format: ``text`` or ``json`` log lines (``SBUSR_LOG_FORMAT``).
        shutdown_grace_s: on SIGTERM/SIGINT, how long running calls may still finish, seconds
            (``SBUSR_SHUTDOWN_GRACE``), default 30.
        use_uvloop: run the event loop on uvloop when it is installed (``SBUSR_UVLOOP``).
        scheduler: run the job scheduler (``SBUSR_SCHEDULER``), default on.
        jobs_table: table of the scheduled jobs in ``database_url`` (``SBUSR_JOBS_TABLE``),
            default ``sbusr_jobs``; their states are in ``<jobs_table>_state``.
        scheduler_poll_ms: how often the scheduler looks at the database for jobs that other
            instances changed, milliseconds (``SBUSR_SCHEDULER_POLL_MS``), default 1000.
        cors_origins: browser origins allowed to call across origins (``SBUSR_CORS_ORIGINS``,
            comma-separated ``scheme://host[:port]``, or ``*`` for any); empty: none.
        idempotency_ttl_s: how long the response of an ``Idempotency-Key`` is kept, seconds
            (``SBUSR_IDEMPOTENCY_TTL_S``), default 86400.
        deadletter_max_entries: most entries kept in the dead-letter stream
            (``SBUSR_DEADLETTER_MAX_ENTRIES``), default 10000; older ones are trimmed.
        deadletter_max_age_s: dead letters older than this are trimmed, seconds
            (``SBUSR_DEADLETTER_MAX_AGE_S``), default 604800 (7 days).
        tracing: make OpenTelemetry spans of the calls (``SBUSR_TRACING``), default off; the
            exporter comes from the standard ``OTEL_*`` variables (``server.tracing``).
        expose_errors: a method's exception text goes to the caller in ``error.data.message``
            (``SBUSR_EXPOSE_ERRORS``), default on; off, the text is replaced by a pointer to
            the server's log record (the request id); ``error.data.type`` stays.
        allow_unauthenticated: serve a non-loopback address without ``auth_token``
            (``SBUSR_ALLOW_UNAUTHENTICATED``), default off: such a start is refused
            (protected mode).
        header_timeout_s: a new HTTP connection's first request headers must be complete
            within this, seconds (``SBUSR_HEADER_TIMEOUT_S``), default 10.
        keepalive_timeout_s: an idle HTTP connection waits this long for its next request,
            seconds (``SBUSR_KEEPALIVE_TIMEOUT_S``), default 5.
        body_timeout_s: an HTTP request body must be complete within this, seconds
            (``SBUSR_BODY_TIMEOUT_S``), default 30.
        write_timeout_s: an HTTP connection whose unsent response makes no progress this
            long is closed, seconds (``SBUSR_WRITE_TIMEOUT_S``), default 30.
        max_unsent_bytes: an HTTP connection whose unsent response is over this and stalled
            is closed at once, bytes (``SBUSR_MAX_UNSENT_BYTES``), default 1 MiB.
        max_connections: open HTTP connections at most (``SBUSR_MAX_CONNECTIONS``); None:
            derived from the descriptor limit at start
            (:func:`server.http.connections.default_max_connections`).
        drain_timeout_s: how long a worker that left its generation (reload, recycling) may
            take to finish its calls before they are answered -32001 and it is stopped, seconds
            (``SBUSR_DRAIN_TIMEOUT_S``); None: :attr:`drain_deadline_s` picks the longest time
            limit a call can have, plus 5 s.
        worker_max_memory_mb: resident memory past which a worker is replaced (its replacement
            first), MiB (``SBUSR_WORKER_MAX_MEMORY_MB``); it also caps what a worker may
            allocate (``RLIMIT_DATA``) at twice this plus its thread stacks; 0: no limit.
        bus_reply_to_pattern: the Redis glob a bus entry's ``reply_to`` must match
            (``SBUSR_BUS_REPLY_TO_PATTERN``, e.g. ``sbusr:reply:*``, the Python client's); an
            entry naming another key is acked and not run. None: any key (design.md), but a
            key that exists without an expiry is never written to (the reply is dead-lettered).
        job_min_interval_s: shortest job interval, and shortest step between cron fire times,
            seconds (``SBUSR_JOB_MIN_INTERVAL_S``), default 1.
        job_max_timeout_s: largest job ``timeout_s``, seconds (``SBUSR_JOB_MAX_TIMEOUT_S``),
            default 3600.
        job_max_instances: largest job ``max_instances`` (``SBUSR_JOB_MAX_INSTANCES``),
            default 8.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    methods_dir: Path = PROJECT_DIR / "methods"
    pool_processes: int = dataclasses.field(default_factory=available_cpus)
    pool_maxtasksperchild: int = 1000
    queue_maxsize: int = 1000
    worker_concurrency: int = 1024
    rpc_timeout_s: float = 30.0
    redis_url: str | None = None
    database_url: str = dataclasses.field(default_factory=_default_database_url)
    auth_token: str | None = None
    flow_ack_timeout_s: float = 15.0
    notify_ttl_ms: int = 10000
    debug: bool = False
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 100
    bus_prefix: str = "sbusr"
    claim_idle_ms: int = 30000
    max_deliveries: int = 5
    peer_ttl_ms: int = 15000
    access_log: bool = True
    metrics: bool = True
    log_format: str = "text"
    shutdown_grace_s: float = 30.0
    use_uvloop: bool = True
    scheduler: bool = True
    jobs_table: str = "sbusr_jobs"
    scheduler_poll_ms: int = 1000
    cors_origins: tuple[str, ...] = ()
    idempotency_ttl_s: int = 86400
    deadletter_max_entries: int = 10000
    deadletter_max_age_s: int = 7 * 86400
    tracing: bool = False
    expose_errors: bool = True
    allow_unauthenticated: bool = False
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    body_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    max_unsent_bytes: int = 1024 * 1024
    max_connections: int | None = None
    drain_timeout_s: float | None = None
    worker_max_memory_mb: int = 0
    bus_reply_to_pattern: str | None = None
    job_min_interval_s: float = 1.0
    job_max_timeout_s: float = 3600.0
    job_max_instances: int = 8

    @property
    def drain_deadline_s(self) -> float:
        """:attr:`drain_timeout_s`, or when unset the longest call time limit (SBUSR_RPC_TIMEOUT
        or SBUSR_JOB_MAX_TIMEOUT_S) plus 5 s: seconds."""
        if self.drain_timeout_s is not None:
            return self.drain_timeout_s
        return max(self.rpc_timeout_s, self.job_max_timeout_s) + 5.0

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (command-line options use this)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        shown = dataclasses.asdict(self)
        if shown["auth_token"]:
            shown["auth_token"] = MASK
        for name in ("redis_url", "database_url"):
            if shown[name]:
                shown[name] = redact_url(shown[name])
        return "Settings({})".format(", ".join("{}={!r}".format(*item) for item in shown.items()))


# setting name -> (environment variable, cast). The cast raises ValueError on bad input.
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "host": ("HOST", str),
    "port": ("PORT", _port),
    "methods_dir": ("METHODS_DIR", lambda text: Path(text).resolve()),
    "pool_processes": ("POOL_PROCESSES", _positive_int),
    "pool_maxtasksperchild": ("POOL_MAXTASKSPERCHILD", _non_negative_int),
    "queue_maxsize": ("QUEUE_MAXSIZE", _positive_int),
    "worker_concurrency": ("WORKER_CONCURRENCY", _positive_int),
    "rpc_timeout_s": ("RPC_TIMEOUT", _positive_float),
    "redis_url": ("REDIS_URL", _optional_text),
    "database_url": ("DATABASE_URL", str),
    "auth_token": ("AUTH_TOKEN", _optional_text),
    "flow_ack_timeout_s": ("FLOW_ACK_TIMEOUT", _positive_float),
    "notify_ttl_ms": ("NOTIFY_TTL_MS", _positive_int),
    "debug": ("DEBUG", _parse_bool),
    "max_body_bytes": ("MAX_BODY_BYTES", _positive_int),
    "max_batch": ("MAX_BATCH", _positive_int),
    "bus_prefix": ("BUS_PREFIX", _key_prefix),
    "claim_idle_ms": ("CLAIM_IDLE_MS", _positive_int),
    "max_deliveries": ("MAX_DELIVERIES", _positive_int),
    "peer_ttl_ms": ("PEER_TTL_MS", _positive_int),
    "access_log": ("ACCESS_LOG", _parse_bool),
    "metrics": ("METRICS", _parse_bool),
    "log_format": ("LOG_FORMAT", _log_format),
    "shutdown_grace_s": ("SHUTDOWN_GRACE", _positive_float),
    "use_uvloop": ("UVLOOP", _parse_bool),
    "scheduler": ("SCHEDULER", _parse_bool),
    "jobs_table": ("JOBS_TABLE", _table_name),
    "scheduler_poll_ms": ("SCHEDULER_POLL_MS", _positive_int),
    "cors_origins": ("CORS_ORIGINS", _origins),
    "idempotency_ttl_s": ("IDEMPOTENCY_TTL_S", _positive_int),
    "deadletter_max_entries": ("DEADLETTER_MAX_ENTRIES", _positive_int),
    "deadletter_max_age_s": ("DEADLETTER_MAX_AGE_S", _positive_int),
    "tracing": ("TRACING", _parse_bool),
    "expose_errors": ("EXPOSE_ERRORS", _parse_bool),
    "allow_unauthenticated": ("ALLOW_UNAUTHENTICATED", _parse_bool),
    "header_timeout_s": ("HEADER_TIMEOUT_S", _positive_float),
    "keepalive_timeout_s": ("KEEPALIVE_TIMEOUT_S", _positive_float),
    "body_timeout_s": ("BODY_TIMEOUT_S", _positive_float),
    "write_timeout_s": ("WRITE_TIMEOUT_S", _positive_float),
    "max_unsent_bytes": ("MAX_UNSENT_BYTES", _positive_int),
    "max_connections": ("MAX_CONNECTIONS", _positive_int),
    "drain_timeout_s": ("DRAIN_TIMEOUT_S", _positive_float),
    "worker_max_memory_mb": ("WORKER_MAX_MEMORY_MB", _non_negative_int),
    "bus_reply_to_pattern": ("BUS_REPLY_TO_PATTERN", _optional_text),
    "job_min_interval_s": ("JOB_MIN_INTERVAL_S", _positive_float),
    "job_max_timeout_s": ("JOB_MAX_TIMEOUT_S", _positive_float),
    "job_max_instances": ("JOB_MAX_INSTANCES", _positive_int),
}

#: Prefixes of ``SBUSR_*`` variables that are not settings of the server (test and bench tools).
_FOREIGN_PREFIXES = ("SBUSR_TEST_", "SBUSR_BENCH_")


def environment_variable(setting: str) -> str:
    """Return the environment variable of a setting, e.g. ``"port"`` -> ``"SBUSR_PORT"``."""
    return ENV_PREFIX + _ENVIRONMENT[setting][0]


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings: defaults, then every ``SBUSR_*`` variable found in ``environ``.

    Args:
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        A frozen :class:`Settings`.

    Raises:
        SettingsError: a variable holds a value its setting cannot take; the message names
            the variable, the value and what was expected.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}  # each cast returns the type of its setting
    for name, (suffix, cast) in _ENVIRONMENT.items():
        variable = ENV_PREFIX + suffix
        if variable not in environ:
            continue
        text = environ[variable]
        try:
            values[name] = cast(text)
        except ValueError as exc:
            shown = MASK if name == "auth_token" else repr(text)
            raise SettingsError(f"{variable}={shown}: {exc}") from None
    return Settings(**values)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """Find ``SBUSR_*`` variables that name no setting (a typo is otherwise silently ignored).

    Args:
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        ``[(variable, closest known variable or None), ...]`` sorted by variable, e.g.
        ``[("SBUSR_POOL_PROCESS", "SBUSR_POOL_PROCESSES")]`` (closest by
        :func:`difflib.get_close_matches`). Variables of the test and bench tools
        (``SBUSR_TEST_*``, ``SBUSR_BENCH_*``) are not reported.
    """
    environ = os.environ if environ is None else environ
    known = [suffix for suffix, _ in _ENVIRONMENT.values()]
    unknown = []
    for variable in sorted(environ):
        suffix = variable.removeprefix(ENV_PREFIX)
        if suffix == variable or suffix in known or variable.startswith(_FOREIGN_PREFIXES):
            continue
        # compared without the prefix, which every name shares
        close = difflib.get_close_matches(suffix, known, n=1, cutoff=0.6)
        unknown.append((variable, ENV_PREFIX + close[0] if close else None))
    return unknown
