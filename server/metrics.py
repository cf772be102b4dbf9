"""Prometheus metrics of sbusr (``GET /metrics``, text exposition format 0.0.4).

One :class:`Metrics` per server, made in ``server.main``, holds everything ``/metrics`` shows
in a registry of its own:

==========================================  =========  ======================================
name                                        type       labels / meaning
==========================================  =========  ======================================
sbusr_calls_total                           counter    method, transport (``http``, ``bus``,
                                                       ``job``), outcome (``result`` or the
                                                       error code, e.g. ``-32601``)
sbusr_calls_deadline_passed_total           counter    transport; calls answered -32004
sbusr_calls_withdrawn_total                 counter    transport; not started, caller left
sbusr_idempotent_replays_total              counter    transport; stored responses sent again
sbusr_idempotent_refusals_total             counter    transport; key reused, another body
sbusr_http_connections_refused_total        counter    closed at once at the ceiling
sbusr_http_connections_evicted_total        counter    idle, closed to make room (ceiling)
sbusr_http_connections_closed_total         counter    reason: a time-out or stalled output
sbusr_http_accept_errors_total              counter    failed accepts (EMFILE, ...)
sbusr_call_duration_seconds                 histogram  method, transport; submit to answer
sbusr_calls_in_flight                       gauge      submitted, not answered yet
sbusr_queue_depth                           gauge      calls waiting for a worker
sbusr_queue_maxsize                         gauge      the queue's limit
sbusr_workers                               gauge      state: busy, idle, starting, draining
sbusr_pool_generation                       gauge      current generation of workers
sbusr_worker_restarts_total                 counter    reason: recycle, timeout, crash, reload
sbusr_reloads_total                         counter    outcome: ok, failed (not the first start)
sbusr_reload_duration_seconds               summary    reloads, ok or failed
sbusr_worker_calls_running                  gauge      calls sent to workers, not answered yet
sbusr_worker_capacity                       gauge      calls the workers may run at once
sbusr_worker_start_duration_seconds         summary    worker starts (spawn until ready)
sbusr_worker_resident_memory_bytes          gauge      resident memory of all live workers
sbusr_worker_resident_memory_max_bytes      gauge      resident memory of the largest worker
sbusr_bus_entries_read_total                counter    bus entries read (XREADGROUP)
sbusr_bus_entries_reclaimed_total           counter    bus entries claimed (XAUTOCLAIM)
sbusr_bus_entries_dead_lettered_total       counter    bus entries moved to the dead letters
sbusr_bus_pending_entries                   gauge      entries delivered, not acked yet
sbusr_bus_dead_letters_replayed_total       counter    dead letters put back on the request stream
sbusr_scheduler_runs_total                  counter    outcome: ok, failed (job runs)
sbusr_build_info                            gauge      version, python; always 1
process_*, python_*                         various    the server process (prometheus_client)
==========================================  =========  ======================================

The call metrics are fed by :class:`CallMetrics` (an observer the pool and the JSON-RPC
core call once per answered call; plain integer counts, turned into metric families at
scrape time); the pool gauges and the bus counters (:class:`BusCountersView`) are read at scrape
time, so are the counts of the call semantics and the HTTP limits
(:mod:`server.limit_counters`). The bus metrics stay 0 while the bus is off, the
scheduler's while it is off.
The worker memory is read from ``/proc/<pid>/statm`` at scrape time (0 where there is no
``/proc``). A call's transport comes from its context (``context["transport"]``, set by the
HTTP handler, the bus consumer and the scheduler); a call without one is counted as
``(none)``.
Label cardinality is bounded: a call answered -32601 (no such method) is counted under
the method label ``(unknown)``, and past :data:`MAX_METHOD_LABELS` distinct names further
names are counted under ``(other)``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from server import __version__
from server.limit_counters import CLOSE_REASONS, LimitCounters, counters
from wire.codec import decode_strict
from wire.errors import DeadlinePassed, MethodNotFound
from wire.names import is_reserved

if TYPE_CHECKING:
    from executor.pool import Pool

__all__ = [
    "CONTENT_TYPE",
    "MAX_METHOD_LABELS",
    "NO_TRANSPORT",
    "outcome_of_error",
    "BusCountersView",
    "CallMetrics",
    "Metrics",
    "resident_memory_bytes",
]

logger = logging.getLogger(__name__)

#: Content-Type of :meth:`Metrics.render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Distinct method labels kept; further names are counted as ``(other)``.
MAX_METHOD_LABELS = 1000

UNKNOWN_METHOD = "(unknown)"
OTHER_METHOD = "(other)"
#: A call's context (``Call.context``): facts such as ``{"transport": "http"}``, or None.
Context = dict[str, Any] | None

#: The transport label of a call whose context names none.
NO_TRANSPORT = "(none)"

#: Latency buckets, seconds: from 1 ms (a trivial call) to 60 s (past the default limit).
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: The ``le`` labels of the buckets (``repr`` writes these bounds as Prometheus does).
_BUCKET_BOUNDS = [repr(bound) for bound in LATENCY_BUCKETS_S] + ["+Inf"]

_METHOD_NOT_FOUND = str(MethodNotFound.code)
_DEADLINE_PASSED = str(DeadlinePassed.code)

_PAGE_SIZE_BYTES = os.sysconf("SC_PAGE_SIZE")


class BusCountersView(Protocol):
    """What the metrics read of the bus at scrape time (``server.bus.Bus.counters``).

    Attributes (read-only here):
        entries_read: entries read from the request stream (XREADGROUP).
        entries_reclaimed: entries claimed from a silent consumer (XAUTOCLAIM).
        entries_dead_lettered: entries moved to the dead-letter stream.
        pending: entries delivered and not acked yet, as last seen (XPENDING).
        dead_letters_replayed: dead letters this instance replayed.
    """

    @property
    def entries_read(self) -> int: ...

    @property
    def entries_reclaimed(self) -> int: ...

    @property
    def entries_dead_lettered(self) -> int: ...

    @property
    def pending(self) -> int: ...

    @property
    def dead_letters_replayed(self) -> int: ...


def outcome_of_error(payload: bytes) -> str:
    """The error code of an error object's JSON as text, e.g. ``"-32601"``.

    Errors are encoded ``{"code":<n>,...}`` (or ``{"code": <n>, ...}``): the code is read
    from the bytes without decoding the whole object; other shapes are decoded.
    """
    if payload.startswith(b'{"code":'):
        end = payload.find(b",", 8)
        text = payload[8 : end if end > 0 else -1].strip()
        if text.lstrip(b"-").isdigit():
            return text.decode()
    try:
        return str(int(decode_strict(payload)["code"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        return "invalid"


class _MethodStats:
    """Counts of one (method, transport) pair: answers by outcome, latency buckets (not
    cumulative)."""

    __slots__ = ("outcomes", "buckets", "sum_s")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one is +Inf
        self.sum_s = 0.0


class CallMetrics(Collector):
    """Counts answered calls and their latency (``sbusr_calls_total``, ``..._duration_seconds``).

    Plain ints in per-method slots, turned into metric families only when ``/metrics`` is
    scraped: :meth:`observe` costs a dict lookup, a bisect and three additions
    (prometheus_client's own Counter and Histogram, with their locks, cost several times more
    per call). Hand :meth:`observe` to the JSON-RPC core and :meth:`observe_pool_call` to
    ``Pool.observer``. Use from the event loop's thread only.
    """

    def __init__(self) -> None:
        self._by_method: dict[tuple[str, str], _MethodStats] = {}
        self._methods: set[str] = set()
        self._deadline_passed: dict[str, int] = {"http": 0, "bus": 0}

    def _stats(self, method: str, transport: str) -> _MethodStats:
        if (
            len(self._methods) >= MAX_METHOD_LABELS
            and method not in self._methods
            and method not in (UNKNOWN_METHOD, OTHER_METHOD)
        ):
            method = OTHER_METHOD
        self._methods.add(method)
        key = (method, transport)
        stats = self._by_method.get(key)
        if stats is None:
            stats = self._by_method[key] = _MethodStats()
        return stats

    def observe(
        self, method: str, ok: bool, payload: bytes, elapsed_s: float, context: Context = None
    ) -> None:
        """Count one answered call.

        Args:
            method: the JSON-RPC method name.
            ok: True for a result, False for an error object.
            payload: the result's or the error object's JSON bytes (only read for errors).
            elapsed_s: from submit to answer, seconds.
            context: the call's context; its ``"transport"`` (``http``, ``bus``, ``job``) is
                the transport label, :data:`NO_TRANSPORT` without one.
        """
        if ok:
            outcome = "result"
        else:
            outcome = outcome_of_error(payload)
            if outcome == _METHOD_NOT_FOUND:
                method = UNKNOWN_METHOD
        transport = (context.get("transport") if context else None) or NO_TRANSPORT
        if not ok and outcome == _DEADLINE_PASSED:
            passed = self._deadline_passed
            passed[transport] = passed.get(transport, 0) + 1
        stats = self._by_method.get((method, transport)) or self._stats(method, transport)
        outcomes = stats.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, elapsed_s)] += 1
        stats.sum_s += elapsed_s

    def observe_pool_call(
        self, method: str, ok: bool, payload: bytes, elapsed_s: float, context: Context = None
    ) -> None:
        """:meth:`observe` for ``Pool.observer``: skips the server's own ``rpc.*`` calls.

        Those run in a worker on the server's behalf (e.g. building the OpenRPC document);
        the JSON-RPC core counts the caller's ``rpc.*`` call itself.
        """
        if not is_reserved(method):
            self.observe(method, ok, payload, elapsed_s, context)

    def collect(self) -> Iterator[Metric]:
        """The three families, built from the counts at scrape time."""
        calls = CounterMetricFamily(
            "sbusr_calls",
            "JSON-RPC calls answered, by method, transport (http, bus, job) and outcome "
            "(result, or the error code).",
            labels=["method", "transport", "outcome"],
        )
        latency = HistogramMetricFamily(
            "sbusr_call_duration_seconds",
            "Time from submit to answer of a call, by method and transport.",
            labels=["method", "transport"],
        )
        bounds = _BUCKET_BOUNDS
        for (method, transport), stats in sorted(self._by_method.items()):
            for outcome, count in sorted(stats.outcomes.items()):
                calls.add_metric([method, transport, outcome], count)
            latency.add_metric(
                [method, transport],
                list(zip(bounds, itertools.accumulate(stats.buckets), strict=False)),
                sum_value=stats.sum_s,
            )
        yield calls
        yield latency
        yield _by_label(
            "sbusr_calls_deadline_passed",
            "Calls answered -32004: their caller's deadline passed before they started (not "
            "run), by transport.",
            "transport",
            self._deadline_passed,
        )


_RESTART_REASONS = ("recycle", "timeout", "crash", "reload")


class _PoolCollector(Collector):
    """Reads the pool's state at scrape time: in flight, queue, workers, restarts, reloads."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self.pool
        status = pool.status()
        yield GaugeMetricFamily(
            "sbusr_calls_in_flight",
            "Calls submitted and not answered yet.",
            value=status["in_flight"],
        )
        yield GaugeMetricFamily(
            "sbusr_queue_depth", "Calls waiting for a worker.", value=status["queue_depth"]
        )
        yield GaugeMetricFamily(
            "sbusr_queue_maxsize",
            "Calls that may wait for a worker.",
            value=status["queue_maxsize"],
        )
        yield GaugeMetricFamily(
            "sbusr_pool_generation", "Current generation of workers.", value=status["generation"]
        )
        states = {"busy": 0, "idle": 0, "starting": 0, "draining": 0}
        for worker in status["workers"]:
            state = worker["state"]
            if state == "ready":
                state = "busy" if worker["busy"] else "idle"
            if state in states:
                states[state] += 1
        workers = GaugeMetricFamily("sbusr_workers", "Worker processes by state.", labels=["state"])
        for state, count in states.items():
            workers.add_metric([state], count)
        yield workers
        restarts = CounterMetricFamily(
            "sbusr_worker_restarts", "Workers replaced, by reason.", labels=["reason"]
        )
        for reason in _RESTART_REASONS:
            restarts.add_metric([reason], status["restarts"].get(reason, 0))
        for reason, count in sorted(status["restarts"].items()):
            if reason not in _RESTART_REASONS:
                restarts.add_metric([reason], count)
        yield restarts
        reloads = CounterMetricFamily(
            "sbusr_reloads",
            "Reloads (GET /sys/reset), by outcome; the first start is not counted.",
            labels=["outcome"],
        )
        stats = pool.reload_stats
        reloads.add_metric(["ok"], stats["ok"])
        reloads.add_metric(["failed"], stats["failed"])
        yield reloads
        yield GaugeMetricFamily(
            "sbusr_worker_calls_running",
            "Calls sent to workers and not answered yet (all generations).",
            value=status["calls_running"],
        )
        yield GaugeMetricFamily(
            "sbusr_worker_capacity",
            "Calls the current generation's workers may run at once (processes x concurrency).",
            value=status["worker_concurrency"]
            * sum(
                1 for worker in status["workers"] if worker["generation"] == status["generation"]
            ),
        )
        starts = status["worker_starts"]
        yield SummaryMetricFamily(
            "sbusr_worker_start_duration_seconds",
            "Time from a worker's spawn until it is ready to take calls, seconds.",
            count_value=starts["count"],
            sum_value=starts["seconds"],
        )
        yield SummaryMetricFamily(
            "sbusr_reload_duration_seconds",
            "Time a reload took, seconds.",
            count_value=stats["ok"] + stats["failed"],
            sum_value=stats["seconds"],
        )
        memory = [resident_memory_bytes(worker["pid"]) for worker in status["workers"]]
        yield GaugeMetricFamily(
            "sbusr_worker_resident_memory_bytes",
            "Resident memory of all live worker processes, bytes.",
            value=sum(memory),
        )
        yield GaugeMetricFamily(
            "sbusr_worker_resident_memory_max_bytes",
            "Resident memory of the largest live worker process, bytes.",
            value=max(memory, default=0),
        )


def resident_memory_bytes(pid: int) -> int:
    """Resident memory of process ``pid``, bytes, from ``/proc/<pid>/statm``.

    Returns 0 when it cannot be read (the process is gone, or no ``/proc``: not Linux).
    """
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


class _BusCollector(Collector):
    """Reads the bus's counters at scrape time; zeros when the bus is off (``counters`` None)."""

    def __init__(self, counters: BusCountersView | None) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        counters = self.counters
        read = reclaimed = dead_lettered = pending = 0
        if counters is not None:
            read, reclaimed = counters.entries_read, counters.entries_reclaimed
            dead_lettered, pending = counters.entries_dead_lettered, counters.pending
        yield CounterMetricFamily(
            "sbusr_bus_entries_read", "Bus entries read from the request stream.", value=read
        )
        yield CounterMetricFamily(
            "sbusr_bus_entries_reclaimed",
            "Bus entries claimed from a silent consumer after claim_idle_ms.",
            value=reclaimed,
        )
        yield CounterMetricFamily(
            "sbusr_bus_entries_dead_lettered",
            "Bus entries moved to the dead-letter stream after max_deliveries.",
            value=dead_lettered,
        )
        yield GaugeMetricFamily(
            "sbusr_bus_pending_entries",
            "Bus entries delivered and not acked yet (as last seen by the bus consumer).",
            value=pending,
        )
        yield CounterMetricFamily(
            "sbusr_bus_dead_letters_replayed",
            "Dead letters put back on the request stream (POST /api/deadletters/{id}/replay).",
            value=counters.dead_letters_replayed if counters is not None else 0,
        )


def _by_label(name: str, documentation: str, label: str, counts: Mapping[str, int]) -> Metric:
    """A counter family with one sample per ``counts`` item, in label order."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


class _LimitCollector(Collector):
    """Reads the counts of the call semantics and the HTTP limits at scrape time."""

    def __init__(self, counts: LimitCounters) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        yield _by_label(
            "sbusr_calls_withdrawn",
            "Calls withdrawn before they started because their caller left (HTTP: the client "
            "disconnected), by transport.",
            "transport",
            counts.calls_withdrawn,
        )
        yield _by_label(
            "sbusr_idempotent_replays",
            "Stored responses sent again for a repeated idempotency key (nothing ran), by "
            "transport.",
            "transport",
            counts.idempotent_replays,
        )
        yield _by_label(
            "sbusr_idempotent_refusals",
            "Requests refused because their idempotency key was used with another body "
            "(HTTP 422, bus -32600), by transport.",
            "transport",
            counts.idempotent_refusals,
        )
        yield CounterMetricFamily(
            "sbusr_http_connections_refused",
            "HTTP connections closed at once at the ceiling (SBUSR_MAX_CONNECTIONS).",
            value=counts.connections_refused,
        )
        yield CounterMetricFamily(
            "sbusr_http_connections_evicted",
            "Idle HTTP connections closed to make room for a new one at the ceiling.",
            value=counts.connections_evicted,
        )
        closed = CounterMetricFamily(
            "sbusr_http_connections_closed",
            "HTTP connections the server closed, by reason: header_timeout, keepalive_timeout, "
            "body_timeout, write_timeout, unsent_output.",
            labels=["reason"],
        )
        for reason in CLOSE_REASONS:
            closed.add_metric([reason], counts.connections_closed.get(reason, 0))
        yield closed
        yield CounterMetricFamily(
            "sbusr_http_accept_errors",
            "Failed accepts of HTTP connections (EMFILE, ENFILE, ENOBUFS, ENOMEM).",
            value=counts.accept_errors,
        )


class _SchedulerCollector(Collector):
    """Reads the scheduler's run counts at scrape time; zeros when the scheduler is off."""

    def __init__(self, runs: Mapping[str, int] | None) -> None:
        self.runs = runs

    def collect(self) -> Iterator[Metric]:
        runs = self.runs or {}
        family = CounterMetricFamily(
            "sbusr_scheduler_runs",
            "Scheduled job runs, by outcome (ok, failed: an error answer, -32001 included).",
            labels=["outcome"],
        )
        for outcome in ("ok", "failed"):
            family.add_metric([outcome], runs.get(outcome, 0))
        yield family


class _BuildCollector(Collector):
    """``sbusr_build_info``: the server's version and the Python it runs on."""

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "sbusr_build",
            "The sbusr version and the Python version of this server; always 1.",
            value={"version": __version__, "python": platform.python_version()},
        )


class Metrics:
    """Everything ``GET /metrics`` shows, in a registry of this server's own.

    Args:
        pool: the process pool; its gauges and counters are read at scrape time.
        calls: the call counts (fed by the pool's and the core's observers; left unfed when
            ``SBUSR_METRICS=0``, then the call families are empty).
        bus_counters: the bus's counters, read at scrape time; None when the bus is off.
        scheduler_runs: the scheduler's run counts by outcome (``JobScheduler.run_counts``:
            ``{"ok": int, "failed": int}``), read at scrape time; None when it is off.
        limit_counts: the counts of the call semantics and the HTTP limits (default: this
            process's :data:`server.limit_counters.counters`), read at scrape time.

    Also shows ``process_*`` and ``python_*`` (prometheus_client's process, platform and GC
    collectors).
    """

    def __init__(
        self,
        pool: Pool,
        calls: CallMetrics,
        bus_counters: BusCountersView | None,
        scheduler_runs: Mapping[str, int] | None = None,
        limit_counts: LimitCounters = counters,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.calls = calls
        self.registry.register(calls)
        self.registry.register(_PoolCollector(pool))
        self.registry.register(_BusCollector(bus_counters))
        self.registry.register(_SchedulerCollector(scheduler_runs))
        self.registry.register(_LimitCollector(limit_counts))
        self.registry.register(_BuildCollector())

    def render(self) -> bytes:
        """The text exposition of every metric (Content-Type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
