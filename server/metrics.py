"""Prometheus metrics of sbusr (``GET /metrics``, text exposition format 0.0.4).

One registry, :data:`REGISTRY`, holds everything ``/metrics`` shows:

==========================================  =========  ======================================
name                                        type       labels / meaning
==========================================  =========  ======================================
sbusr_calls_total                           counter    method, outcome (``result`` or the
                                                       error code, e.g. ``-32601``)
sbusr_call_duration_seconds                 histogram  method; from submit to answer
sbusr_calls_in_flight                       gauge      submitted, not answered yet
sbusr_queue_depth                           gauge      calls waiting for a worker
sbusr_queue_maxsize                         gauge      the queue's limit
sbusr_workers                               gauge      state: busy, idle, starting, draining
sbusr_pool_generation                       gauge      current generation of workers
sbusr_worker_restarts_total                 counter    reason: recycle, timeout, crash, reload
sbusr_reloads_total                         counter    outcome: ok, failed (not the first start)
sbusr_reload_duration_seconds               summary    reloads, ok or failed
sbusr_bus_entries_read_total                counter    bus entries read (XREADGROUP)
sbusr_bus_entries_reclaimed_total           counter    bus entries claimed (XAUTOCLAIM)
sbusr_bus_entries_dead_lettered_total       counter    bus entries moved to the dead letters
sbusr_bus_pending_entries                   gauge      entries delivered, not acked yet
process_*, python_*                         various    the server process (prometheus_client)
==========================================  =========  ======================================

The call metrics are fed by :class:`CallMetrics` (an observer the pool and the JSON-RPC
core call once per answered call; plain integer counts, turned into metric families at
scrape time); the pool gauges are read from the pool at scrape time (:func:`watch_pool`).

The bus calls the ``bus_*`` functions below; its metrics stay 0 while the bus is off.
Label cardinality is bounded: a call answered -32601 (no such method) is counted under
the method label ``(unknown)``, and past :data:`MAX_METHOD_LABELS` distinct names further
names are counted under ``(other)``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.base import BaseHandler

if TYPE_CHECKING:
    from executor.pool import Pool

__all__ = [
    "REGISTRY",
    "CONTENT_TYPE",
    "MAX_METHOD_LABELS",
    "CallMetrics",
    "MetricsHandler",
    "call_metrics",
    "watch_pool",
    "render",
    "bus_entries_read",
    "bus_entries_reclaimed",
    "bus_entries_dead_lettered",
    "bus_pending",
]

logger = logging.getLogger(__name__)

#: The registry behind ``GET /metrics``.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: Content-Type of :func:`render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Distinct method labels kept; further names are counted as ``(other)``.
MAX_METHOD_LABELS = 1000

UNKNOWN_METHOD = "(unknown)"
OTHER_METHOD = "(other)"

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

_BUS_READ = Counter(
    "sbusr_bus_entries_read", "Bus entries read from the request stream.", registry=REGISTRY
)
_BUS_RECLAIMED = Counter(
    "sbusr_bus_entries_reclaimed",
    "Bus entries claimed from a silent consumer after claim_idle_ms.",
    registry=REGISTRY,
)
_BUS_DEAD = Counter(
    "sbusr_bus_entries_dead_lettered",
    "Bus entries moved to the dead-letter stream after max_deliveries.",
    registry=REGISTRY,
)
_BUS_PENDING = Gauge(
    "sbusr_bus_pending_entries",
    "Bus entries delivered and not acked yet (as last seen by the bus consumer).",
    registry=REGISTRY,
)


def _outcome_of_error(payload: bytes) -> str:
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
        return str(int(json.loads(payload)["code"]))
    except (ValueError, KeyError, TypeError):
        return "invalid"


class _MethodStats:
    """Counts of one method label: answers by outcome, latency buckets (not cumulative)."""

    __slots__ = ("outcomes", "buckets", "sum_s")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one is +Inf
        self.sum_s = 0.0


class CallMetrics(Collector):
    """Counts answered calls and their latency; one instance, :data:`call_metrics`.

    Plain ints in per-method slots, turned into ``sbusr_calls_total`` and
    ``sbusr_call_duration_seconds`` only when ``/metrics`` is scraped: :meth:`observe` costs
    a dict lookup, a bisect and three additions (prometheus_client's own Counter and
    Histogram, with their locks, cost several times more per call). Use from the event
    loop's thread only.
    """

    def __init__(self) -> None:
        self._by_method: dict[str, _MethodStats] = {}

    def _stats(self, method: str) -> _MethodStats:
        if len(self._by_method) >= MAX_METHOD_LABELS and method not in (
            UNKNOWN_METHOD,
            OTHER_METHOD,
        ):
            return self._stats(OTHER_METHOD)
        stats = self._by_method.get(method)
        if stats is None:
            stats = self._by_method[method] = _MethodStats()
        return stats

    def observe(self, method: str, ok: bool, payload: bytes, elapsed_s: float) -> None:
        """Count one answered call.

        Args:
            method: the JSON-RPC method name.
            ok: True for a result, False for an error object.
            payload: the result's or the error object's JSON bytes (only read for errors).
            elapsed_s: from submit to answer, seconds.
        """
        if ok:
            outcome = "result"
        else:
            outcome = _outcome_of_error(payload)
            if outcome == "-32601":
                method = UNKNOWN_METHOD
        stats = self._by_method.get(method) or self._stats(method)
        outcomes = stats.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, elapsed_s)] += 1
        stats.sum_s += elapsed_s

    def observe_pool_call(self, method: str, ok: bool, payload: bytes, elapsed_s: float) -> None:
        """:meth:`observe` for ``Pool.observer``: skips the server's own ``rpc.*`` calls.

        Those run in a worker on the server's behalf (e.g. building the OpenRPC document);
        the JSON-RPC core counts the caller's ``rpc.*`` call itself.
        """
        if not method.startswith("rpc."):
            self.observe(method, ok, payload, elapsed_s)

    def collect(self) -> Iterator[Any]:
        """The two families, built from the counts at scrape time."""
        calls = CounterMetricFamily(
            "sbusr_calls",
            "JSON-RPC calls answered, by method and outcome (result, or the error code).",
            labels=["method", "outcome"],
        )
        latency = HistogramMetricFamily(
            "sbusr_call_duration_seconds",
            "Time from submit to answer of a call, by method.",
            labels=["method"],
        )
        bounds = [floatToGoString(bound) for bound in LATENCY_BUCKETS_S] + ["+Inf"]
        for method, stats in sorted(self._by_method.items()):
            for outcome, count in sorted(stats.outcomes.items()):
                calls.add_metric([method, outcome], count)
            latency.add_metric(
                [method],
                list(zip(bounds, itertools.accumulate(stats.buckets), strict=False)),
                sum_value=stats.sum_s,
            )
        yield calls
        yield latency


#: The observer to hand to the pool and the JSON-RPC core.
call_metrics = CallMetrics()
REGISTRY.register(call_metrics)


class _PoolCollector(Collector):
    """Reads the pool's state at scrape time: in flight, queue, workers, restarts, reloads."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Any]:
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
        for reason in ("recycle", "timeout", "crash", "reload"):
            restarts.add_metric([reason], status["restarts"].get(reason, 0))
        for reason, count in sorted(status["restarts"].items()):
            if reason not in ("recycle", "timeout", "crash", "reload"):
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
        yield SummaryMetricFamily(
            "sbusr_reload_duration_seconds",
            "Time a reload took, seconds.",
            count_value=stats["ok"] + stats["failed"],
            sum_value=stats["seconds"],
        )


_pool_collector: _PoolCollector | None = None


def watch_pool(pool: Pool) -> None:
    """Show ``pool``'s gauges and counters on ``/metrics`` (replaces a pool watched before).

    Also turns off the ``*_created`` series of prometheus_client (process-wide): they double
    the scrape for no use here.
    """
    global _pool_collector
    disable_created_metrics()
    if _pool_collector is not None:
        REGISTRY.unregister(_pool_collector)
    _pool_collector = _PoolCollector(pool)
    REGISTRY.register(_pool_collector)


def render() -> bytes:
    """The text exposition of :data:`REGISTRY` (Content-Type :data:`CONTENT_TYPE`)."""
    return generate_latest(REGISTRY)


class MetricsHandler(BaseHandler):
    """``GET /metrics``: every metric of :data:`REGISTRY` in the Prometheus text format.

    Needs the bearer token when the server has one (Prometheus: ``authorization``
    in the scrape config).
    """

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(render())


def bus_entries_read(count: int = 1) -> None:
    """Count ``count`` entries read from the request stream (call after each XREADGROUP)."""
    _BUS_READ.inc(count)


def bus_entries_reclaimed(count: int = 1) -> None:
    """Count ``count`` entries claimed from a silent consumer (after each XAUTOCLAIM)."""
    _BUS_RECLAIMED.inc(count)


def bus_entries_dead_lettered(count: int = 1) -> None:
    """Count ``count`` entries moved to the dead-letter stream."""
    _BUS_DEAD.inc(count)


def bus_pending(count: int) -> None:
    """Set the number of entries delivered and not acked yet (e.g. from XPENDING's summary)."""
    _BUS_PENDING.set(count)
