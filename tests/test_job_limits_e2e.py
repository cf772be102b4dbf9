"""The server's bounds on jobs, end to end: refused over REST, paused when stored, no long walks.

A job may not run more often than ``SBUSR_JOB_MIN_INTERVAL_S`` (interval or cron step), nor ask a
time limit over ``SBUSR_JOB_MAX_TIMEOUT_S`` or more than ``SBUSR_JOB_MAX_INSTANCES`` runs at once;
its params are strict JSON; a job stored earlier over the bounds is paused at the next start,
and a job far behind its schedule skips what its misfire grace would skip anyway.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from server.scheduler.service import jobs_engine
from tests.support import ServerProcess, wait_for


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """A private SQLite job database, a fast poll, one worker."""
    return {
        "SBUSR_DATABASE_URL": "sqlite:///{}".format(tmp_path / "jobs.sqlite3"),
        "SBUSR_SCHEDULER_POLL_MS": "200",
        "SBUSR_POOL_PROCESSES": "1",
    }


def post_job(server: ServerProcess, body: str | dict[str, Any]) -> Any:
    """POST /api/jobs with ``body`` (text as it is, else JSON); the response."""
    if isinstance(body, str):
        return server.http.post(
            "/api/jobs", content=body, headers={"Content-Type": "application/json"}
        )
    return server.http.post("/api/jobs", json=body)


def job_state(server: ServerProcess, job_id: str) -> dict[str, Any]:
    response = server.http.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()["state"]
    return state


@pytest.mark.parametrize(
    "bounds, path",
    [
        ({"interval_s": 0.000001}, "/interval_s"),
        ({"cron": {"second": "*/1"}}, "/cron"),
        ({"interval_s": 60, "timeout_s": 1e9}, "/timeout_s"),
        ({"interval_s": 60, "max_instances": 1000}, "/max_instances"),
    ],
)
def test_a_job_over_the_bounds_is_refused(
    start_server: Callable[..., ServerProcess],
    job_env: dict[str, str],
    bounds: dict[str, Any],
    path: str,
) -> None:
    server = start_server(env={**job_env, "SBUSR_JOB_MIN_INTERVAL_S": "2"})
    response = post_job(server, {"id": "greedy", "method": "echo", "params": ["x"], **bounds})
    assert response.status_code == 400, response.text
    assert [detail["path"] for detail in response.json()["error"]["details"]] == [path]
    assert server.http.get("/api/jobs").json() == {"jobs": []}
    within = post_job(server, {"id": "fair", "method": "echo", "cron": "* * * * *"})
    assert within.status_code == 201, within.text


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "j", "method": "echo", "interval_s": 60, "params": [NaN]}',
        '{"id": "j", "method": "echo", "interval_s": 60, "params": [Infinity]}',
        '{"id": "j", "method": "echo", "interval_s": 60, "params": ["\\udc80"]}',
        '{"id": "j", "method": "echo", "cron": "\\udc80 * * * *"}',
        '{"id": "j", "method": "echo", "interval_s": 60, "timezone": "\\udc80"}',
    ],
)
def test_job_bodies_that_are_not_strict_json_are_400(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str], body: str
) -> None:
    server = start_server(env=job_env)
    response = post_job(server, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
    assert server.http.get("/api/jobs").json() == {"jobs": []}


def test_a_stored_job_over_the_bounds_is_paused_at_the_next_start(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    lenient = start_server(env={**job_env, "SBUSR_JOB_MIN_INTERVAL_S": "0.1"})
    hasty = post_job(lenient, {"id": "hasty", "method": "echo", "interval_s": 0.5})
    assert hasty.status_code == 201, hasty.text
    assert lenient.stop() == 0
    server = start_server(env=job_env)
    wait_for(
        lambda: "job hasty breaks the server's limits and is paused" in server.log(),
        message="the refusal in the log",
    )
    assert job_state(server, "hasty")["status"] == "paused"
    assert [job["id"] for job in server.http.get("/api/jobs").json()["jobs"]] == ["hasty"]
    assert server.call("echo", ["alive"])["result"] == "alive"


def change_stored_job(database_url: str, job_id: str, **attributes: Any) -> None:
    """Set attributes of a stored job behind the server's back (e.g. ``next_run_time``, as if
    the server had been down since then, or ``kwargs`` as an older version stored them)."""
    scheduler = BackgroundScheduler(timezone=datetime.UTC)
    store = SQLAlchemyJobStore(engine=jobs_engine(database_url), tablename="sbusr_jobs")
    store.start(scheduler, "default")
    job = store.lookup_job(job_id)
    for name, value in attributes.items():
        setattr(job, name, value)
    store.update_job(job)
    store.shutdown()


def test_a_job_a_year_behind_runs_at_once_without_walking_the_year(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    first = start_server(env=job_env)
    spec = {"id": "late", "method": "echo", "params": ["x"], "interval_s": 1}
    created = post_job(first, {**spec, "misfire_grace_time_s": None})
    assert created.status_code == 201, created.text
    assert first.stop() == 0
    a_year_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=365)
    change_stored_job(job_env["SBUSR_DATABASE_URL"], "late", next_run_time=a_year_ago)
    server = start_server(env=job_env)
    wait_for(lambda: job_state(server, "late")["runs"] >= 1, 20.0, message="a run")
    assert "job late is behind its schedule" in server.log()
    assert server.call("echo", ["alive"])["result"] == "alive"


def test_a_stored_job_whose_params_are_not_json_does_not_fail_the_listing(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    first = start_server(env=job_env)
    spec = {"id": "old", "method": "echo", "params": ["x"], "interval_s": 3600}
    assert post_job(first, spec).status_code == 201
    assert post_job(first, {**spec, "id": "fine"}).status_code == 201
    assert first.stop() == 0
    stored = {**spec, "params": [float("nan")], "source": "api"}
    change_stored_job(job_env["SBUSR_DATABASE_URL"], "old", kwargs={"spec": stored})
    server = start_server(env=job_env)
    response = server.http.get("/api/jobs")
    assert response.status_code == 200, response.text
    listed = {job["id"]: job["params"] for job in response.json()["jobs"]}
    assert listed == {"old": None, "fine": ["x"]}
    assert "job old: stored params are not JSON" in server.log()


def test_a_misfire_grace_in_fractions_of_a_second_is_taken_and_runs(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    server = start_server(env=job_env)
    spec = {"id": "brief", "method": "echo", "params": ["x"], "interval_s": 1}
    created = post_job(server, {**spec, "misfire_grace_time_s": 0.5})
    assert created.status_code == 201, created.text
    assert created.json()["misfire_grace_time_s"] == 0.5
    wait_for(lambda: job_state(server, "brief")["runs"] >= 1, 20.0, message="a run")


def test_a_misfire_grace_over_a_day_is_refused(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    server = start_server(env=job_env)
    spec = {"id": "endless", "method": "echo", "interval_s": 1, "misfire_grace_time_s": 1e20}
    response = post_job(server, spec)
    assert response.status_code == 400, response.text
    details = response.json()["error"]["details"]
    assert [detail["path"] for detail in details] == ["/misfire_grace_time_s"]
    assert server.http.get("/api/jobs").json() == {"jobs": []}


def test_a_stored_job_with_an_endless_grace_is_paused_and_the_others_run(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    first = start_server(env=job_env)
    spec = {"id": "endless", "method": "echo", "params": ["x"], "interval_s": 1}
    assert post_job(first, spec).status_code == 201
    assert post_job(first, {**spec, "id": "steady"}).status_code == 201
    assert first.stop() == 0
    stored = {**spec, "misfire_grace_time_s": 10**20, "source": "api"}
    change_stored_job(
        job_env["SBUSR_DATABASE_URL"], "endless", kwargs={"spec": stored}, misfire_grace_time=10**20
    )
    server = start_server(env=job_env)
    wait_for(lambda: job_state(server, "steady")["runs"] >= 2, 20.0, message="runs of steady")
    assert job_state(server, "endless")["status"] == "paused"
    assert "job endless breaks the server's limits and is paused" in server.log()


@pytest.mark.parametrize(
    "trigger, path",
    [
        ({"date": "9999-12-31T23:59:59-14:00"}, "/date"),
        ({"date": "0001-01-01T00:00:00+14:00"}, "/date"),
        ({"cron": {"year": "9999", "month": "12", "day": "31", "hour": "23"}}, "/cron"),
    ],
)
def test_a_first_run_time_outside_the_utc_years_is_400(
    start_server: Callable[..., ServerProcess],
    job_env: dict[str, str],
    trigger: dict[str, Any],
    path: str,
) -> None:
    """Valid in its own zone, out of range in UTC, where the job store keeps it: 400, not 500."""
    server = start_server(env=job_env)
    zone = "Etc/GMT+12" if "cron" in trigger else "UTC"
    response = post_job(server, {"id": "edge", "method": "echo", "timezone": zone, **trigger})
    assert response.status_code == 400, response.text
    assert [detail["path"] for detail in response.json()["error"]["details"]] == [path]
    assert server.http.get("/api/jobs").json() == {"jobs": []}
