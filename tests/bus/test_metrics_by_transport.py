"""GET /metrics of a server with the bus and the scheduler: calls by transport, job runs,
worker memory and build info."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable

import redis
from prometheus_client.parser import text_string_to_metric_families

from server import __version__
from tests.support import ServerProcess, wait_for

#: One sample: (name, sorted (label, value) pairs).
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(server: ServerProcess) -> dict[SampleKey, float]:
    """GET /metrics -> {(sample name, sorted labels): value}."""
    response = server.http.get("/metrics")
    assert response.status_code == 200
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def calls(samples: dict[SampleKey, float], method: str, transport: str, outcome: str) -> float:
    labels = (("method", method), ("outcome", outcome), ("transport", transport))
    return samples.get(("sbusr_calls_total", labels), 0.0)


def run_job_now(server: ServerProcess, job_id: str, method: str, params: list[str]) -> None:
    """Add a job of ``method`` that would run in an hour, run it now, wait for the run."""
    spec = {"id": job_id, "method": method, "params": params, "interval_s": 3600}
    created = server.http.post("/api/jobs", json=spec)
    assert created.status_code == 201, created.text
    assert server.http.post(f"/api/jobs/{job_id}/run").status_code == 202

    def ran() -> bool:
        state = server.http.get(f"/api/jobs/{job_id}").json()["state"]
        return bool(state["runs"] == 1 and state["last_run_end"])

    wait_for(ran, 15.0, message=f"the run of job {job_id}")


def test_calls_are_counted_by_transport_and_job_runs_by_outcome(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    assert server.call("echo", ["over http"])["result"] == "over http"
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["over the bus"], "id": 1}
    raw.xadd("sbusr:rpc", {"data": json.dumps(request), "reply_to": "test:reply"})
    popped = raw.blpop(["test:reply"], timeout=15)
    assert popped is not None and json.loads(popped[1])["result"] == "over the bus"
    run_job_now(server, "fine", "echo", ["tick"])
    run_job_now(server, "broken", "exception", ["boom"])

    samples = scrape(server)
    assert calls(samples, "echo", "http", "result") == 1
    assert calls(samples, "echo", "bus", "result") == 1
    assert calls(samples, "echo", "job", "result") == 1
    assert calls(samples, "exception", "job", "-32000") == 1
    for transport in ("http", "bus", "job"):
        key = ("sbusr_call_duration_seconds_count", (("method", "echo"), ("transport", transport)))
        assert samples[key] == 1
    assert samples[("sbusr_scheduler_runs_total", (("outcome", "ok"),))] == 1
    assert samples[("sbusr_scheduler_runs_total", (("outcome", "failed"),))] == 1


def test_build_info_and_worker_memory(bus_server: Callable[..., ServerProcess]) -> None:
    samples = scrape(bus_server())
    build = (("python", platform.python_version()), ("version", __version__))
    assert samples[("sbusr_build_info", build)] == 1
    total = samples[("sbusr_worker_resident_memory_bytes", ())]
    largest = samples[("sbusr_worker_resident_memory_max_bytes", ())]
    assert 0 < largest < total  # two workers (tests/support.py), each over a page
