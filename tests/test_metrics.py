"""GET /metrics: Prometheus text; counts follow the calls, gauges follow the pool."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

import server.metrics as metrics
from server.metrics import CallMetrics, outcome_of_error
from tests.support import ServerProcess, StartServer, wait_for

#: One sample: (name, sorted (label, value) pairs).
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(server: ServerProcess) -> dict[SampleKey, float]:
    """GET /metrics -> {(sample name, sorted labels): value}."""
    response = server.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def calls(
    samples: dict[SampleKey, float], method: str, outcome: str, transport: str = "http"
) -> float:
    labels = (("method", method), ("outcome", outcome), ("transport", transport))
    return samples.get(("sbusr_calls_total", labels), 0.0)


def test_call_counts_follow_results_and_errors(shared_server: ServerProcess) -> None:
    before = scrape(shared_server)
    assert shared_server.call("echo", ["hi"])["result"] == "hi"
    assert shared_server.call("echo", ["again"])["result"] == "again"
    assert shared_server.call("exception", ["boom"])["error"]["code"] == -32000
    assert shared_server.call("greetings.refuse", ["x"])["error"]["code"] == 4004
    assert shared_server.call("echo", [1, 2])["error"]["code"] == -32602
    assert shared_server.call("no_such_method")["error"]["code"] == -32601
    assert shared_server.call("_private")["error"]["code"] == -32601
    after = scrape(shared_server)
    assert calls(after, "echo", "result") - calls(before, "echo", "result") == 2
    assert calls(after, "echo", "-32602") - calls(before, "echo", "-32602") == 1
    assert calls(after, "exception", "-32000") - calls(before, "exception", "-32000") == 1
    assert calls(after, "greetings.refuse", "4004") - calls(before, "greetings.refuse", "4004") == 1
    assert calls(after, "(unknown)", "-32601") - calls(before, "(unknown)", "-32601") == 2
    assert not any(labels and ("method", "no_such_method") in labels for _, labels in after)
    count = ("sbusr_call_duration_seconds_count", (("method", "echo"), ("transport", "http")))
    assert after[count] - before.get(count, 0.0) == 3


def test_timeout_is_counted_with_its_code_and_restart(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_RPC_TIMEOUT": "0.3"})
    assert server.call("sleep", [5])["error"]["code"] == -32001
    after = scrape(server)
    assert calls(after, "sleep", "-32001") == 1
    assert after[("sbusr_worker_restarts_total", (("reason", "timeout"),))] == 1


def test_pool_gauges_and_reloads(server: ServerProcess) -> None:
    samples = scrape(server)
    assert samples[("sbusr_workers", (("state", "idle"),))] == 2
    assert samples[("sbusr_calls_in_flight", ())] == 0
    assert samples[("sbusr_queue_depth", ())] == 0
    assert samples[("sbusr_pool_generation", ())] == 1
    assert samples[("sbusr_reloads_total", (("outcome", "ok"),))] == 0
    assert samples[("sbusr_worker_calls_running", ())] == 0
    concurrency = server.status()["worker_concurrency"]
    assert samples[("sbusr_worker_capacity", ())] == 2 * concurrency
    assert samples[("sbusr_worker_start_duration_seconds_count", ())] == 2
    assert samples[("sbusr_worker_start_duration_seconds_sum", ())] > 0
    assert server.http.get("/sys/reset").status_code == 200
    samples = scrape(server)
    assert samples[("sbusr_pool_generation", ())] == 2
    assert samples[("sbusr_reloads_total", (("outcome", "ok"),))] == 1
    assert samples[("sbusr_reload_duration_seconds_count", ())] == 1
    assert samples[("sbusr_reload_duration_seconds_sum", ())] > 0
    assert samples[("sbusr_worker_restarts_total", (("reason", "reload"),))] == 2
    assert samples[("sbusr_worker_start_duration_seconds_count", ())] == 4
    for name in (
        "sbusr_bus_entries_read_total",
        "sbusr_bus_entries_reclaimed_total",
        "sbusr_bus_entries_dead_lettered_total",
        "sbusr_bus_pending_entries",
    ):
        assert samples[(name, ())] == 0


def test_busy_workers_show_while_a_call_runs(server: ServerProcess) -> None:
    caller = threading.Thread(target=server.call, args=("sleep", [1.0]))
    caller.start()
    try:
        wait_for(
            lambda: scrape(server)[("sbusr_workers", (("state", "busy"),))] == 1,
            message="one busy worker",
        )
        samples = scrape(server)
        assert samples[("sbusr_calls_in_flight", ())] == 1
        assert samples[("sbusr_worker_calls_running", ())] == 1
    finally:
        caller.join()


def test_metrics_off_counts_no_calls(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_METRICS": "0"})
    server.call("echo", ["hi"])
    samples = scrape(server)
    assert calls(samples, "echo", "result") == 0
    assert samples[("sbusr_workers", (("state", "idle"),))] == 2


def test_outcome_is_read_from_both_error_encodings() -> None:
    assert outcome_of_error(b'{"code":-32601,"message":"Method not found"}') == "-32601"
    assert outcome_of_error(b'{"code": -32001, "message": "Call timed out"}') == "-32001"
    assert outcome_of_error(b'{"message": "x", "code": 7}') == "7"
    assert outcome_of_error(b"garbage") == "invalid"


def test_method_labels_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_METHOD_LABELS", 2)
    observer = CallMetrics()
    for name in ("cap.a", "cap.b", "cap.c", "cap.d"):
        observer.observe(name, True, b"1", 0.001)
    none = metrics.NO_TRANSPORT
    assert set(observer._by_method) == {
        ("cap.a", none),
        ("cap.b", none),
        (metrics.OTHER_METHOD, none),
    }
    assert observer._by_method[(metrics.OTHER_METHOD, none)].outcomes == {"result": 2}


def test_latency_buckets_are_cumulative() -> None:
    observer = CallMetrics()
    for elapsed_s in (0.0005, 0.001, 0.003, 100.0):
        observer.observe("hist.m", True, b"1", elapsed_s)
    calls, latency = list(observer.collect())[:2]
    buckets = {
        sample.labels["le"]: sample.value
        for sample in latency.samples
        if sample.name.endswith("_bucket")
    }
    assert (
        buckets["0.001"],
        buckets["0.0025"],
        buckets["0.005"],
        buckets["60.0"],
        buckets["+Inf"],
    ) == (2, 2, 3, 3, 4)
    sums = [sample.value for sample in latency.samples if sample.name.endswith("_sum")]
    assert sums == [0.0005 + 0.001 + 0.003 + 100.0]
    assert [(s.labels, s.value) for s in calls.samples] == [
        ({"method": "hist.m", "transport": metrics.NO_TRANSPORT, "outcome": "result"}, 4)
    ]
