"""The scheduler end to end: real server subprocesses, real SQLite/MariaDB and Redis.

Redis: ``SBUSR_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``, a db of these tests
only, flushed before and after). MariaDB: ``SBUSR_TEST_MARIADB_URL`` (default
``mysql+pymysql://root@127.0.0.1:3306/test``), tables with unique names, dropped after.
"""

from __future__ import annotations

import datetime
import os
import secrets
import sqlite3
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from server.scheduler.lease import RedisLease
from tests.support import ServerProcess, flushed_redis_db, wait_for
from wire.keys import BusKeys

REDIS_URL = os.environ.get("SBUSR_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
MARIADB_URL = os.environ.get("SBUSR_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRESQL_URL = os.environ.get(
    "SBUSR_TEST_POSTGRESQL_URL", "postgresql+psycopg2://root@127.0.0.1:5432/test"
)

PROBE = textwrap.dedent('''\
    """Methods the scheduler tests run as jobs."""
    import os
    import sqlite3

    from kit import current_job


    def record(path, tag="run"):
        """Insert one row (job id, scheduled run time, worker pid) into the SQLite file ``path``."""
        job = current_job() or {}
        with sqlite3.connect(path, timeout=30) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (job TEXT, run_time TEXT, pid INT, tag TEXT)"
            )
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?)",
                       (job.get("id"), job.get("scheduled_run_time"), os.getpid(), tag))
        return {"pid": os.getpid()}


    def fail(message):
        """Always raise ValueError(message)."""
        raise ValueError(message)
    ''')


@pytest.fixture
def probe_methods(methods_dir: Path) -> Path:
    (methods_dir / "jobprobe.py").write_text(PROBE)
    return methods_dir


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """A private SQLite job database, a fast poll, one worker (quicker starts)."""
    return {
        "SBUSR_DATABASE_URL": "sqlite:///%s" % (tmp_path / "data" / "jobs.sqlite3"),
        "SBUSR_SCHEDULER_POLL_MS": "200",
        "SBUSR_POOL_PROCESSES": "1",
    }


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The tests' own Redis db, flushed before and after."""
    yield from flushed_redis_db(REDIS_URL)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Job database settings for ``request.param``: ``sqlite`` (a file of this test),
    ``mariadb`` or ``postgresql`` (tables of unique names, dropped after the test)."""
    if request.param == "sqlite":
        yield {"SBUSR_DATABASE_URL": "sqlite:///%s" % (tmp_path / "shared.sqlite3")}
        return
    url = {"mariadb": MARIADB_URL, "postgresql": POSTGRESQL_URL}[request.param]
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        pytest.fail(
            f"{request.param} at {url} cannot be reached "
            f"(set SBUSR_TEST_{request.param.upper()}_URL): {exc}"
        )
    table = f"sbusr_test_jobs_{secrets.token_hex(4)}"
    yield {"SBUSR_DATABASE_URL": url, "SBUSR_JOBS_TABLE": table}
    with engine.begin() as connection:
        for name in (table, table + "_state"):
            connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def add_job(server: ServerProcess, **spec: Any) -> dict[str, Any]:
    response = server.http.post("/api/jobs", json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def get_job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    response = server.http.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def rows(path: Path) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT job, run_time, pid, tag FROM runs").fetchall()
        except sqlite3.OperationalError:  # no table yet
            return []


def job_state_when(
    server: ServerProcess,
    job_id: str,
    condition: Callable[[dict[str, Any]], bool],
    message: str,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Poll the job until ``condition(state)`` holds; return the state."""

    def check() -> dict[str, Any] | None:
        state = get_job(server, job_id)["state"]
        return state if condition(state) else None

    state: dict[str, Any] = wait_for(check, timeout_s, interval_s=0.1, message=message)
    return state


# ---------------------------------------------------------------- REST, one instance
def test_interval_job_runs_and_its_state_advances(
    start_server: Callable[..., ServerProcess],
    probe_methods: Path,
    job_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(env=job_env)
    runs_path = tmp_path / "runs.sqlite3"
    created = add_job(
        server, id="tick", method="jobprobe.record", params=[str(runs_path)], interval_s=1
    )
    assert created["state"]["status"] == "scheduled" and created["state"]["runs"] == 0
    first = job_state_when(
        server, "tick", lambda s: s["runs"] >= 1 and s["last_run_end"], "a first run"
    )
    second = job_state_when(
        server, "tick", lambda s: s["runs"] >= 2 and s["last_run_end"], "a second run"
    )
    assert second["next_run_time"] > first["next_run_time"]
    assert '"pid"' in second["last_result"] and second["last_error"] is None
    recorded = rows(runs_path)
    assert len(recorded) >= 2 and {row[0] for row in recorded} == {"tick"}
    listed = server.http.get("/api/jobs").json()["jobs"]
    assert [job["id"] for job in listed] == ["tick"]


def test_pause_resume_run_now_and_delete(
    start_server: Callable[..., ServerProcess],
    probe_methods: Path,
    job_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(env=job_env)
    runs_path = tmp_path / "runs.sqlite3"
    add_job(
        server,
        id="hourly",
        method="jobprobe.record",
        params=[str(runs_path), "manual"],
        interval_s=3600,
    )
    assert server.http.post("/api/jobs/hourly/run").status_code == 202
    job_state_when(server, "hourly", lambda s: s["runs"] == 1 and s["last_run_end"], "run now")
    paused = server.http.post("/api/jobs/hourly/pause")
    assert paused.status_code == 200
    assert paused.json()["state"]["status"] == "paused"
    assert paused.json()["state"]["next_run_time"] is None
    assert server.http.post("/api/jobs/hourly/run").status_code == 202  # runs even when paused
    state = job_state_when(
        server, "hourly", lambda s: s["runs"] == 2 and s["last_run_end"], "run now while paused"
    )
    assert state["status"] == "paused"
    resumed = server.http.post("/api/jobs/hourly/resume").json()
    assert resumed["state"]["status"] == "scheduled" and resumed["state"]["next_run_time"]
    assert server.http.delete("/api/jobs/hourly").json() == {"id": "hourly", "deleted": True}
    missing = server.http.get("/api/jobs/hourly")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404
    assert server.http.get("/api/jobs").json() == {"jobs": []}
    assert len(rows(runs_path)) == 2


def test_rest_errors(start_server: Callable[..., ServerProcess], job_env: dict[str, str]) -> None:
    server = start_server(env=job_env)
    bad = server.http.post("/api/jobs", json={"id": "x", "method": "echo", "cron": "99 * * * *"})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["path"] == "/cron"
    not_json = server.http.post("/api/jobs", content=b"{nope")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
    add_job(server, id="x", method="echo", params=["a"], interval_s=3600)
    duplicate = server.http.post("/api/jobs", json={"id": "x", "method": "echo", "interval_s": 5})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == 409
    for path in ("/api/jobs/nope/pause", "/api/jobs/nope/resume", "/api/jobs/nope/run"):
        assert server.http.post(path).status_code == 404
    assert server.http.delete("/api/jobs/nope").status_code == 404


def test_job_routes_answer_503_when_the_scheduler_is_off(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    server = start_server(env=dict(job_env, SBUSR_SCHEDULER="0"))
    response = server.http.get("/api/jobs")
    assert response.status_code == 503
    assert "SBUSR_SCHEDULER" in response.json()["error"]["message"]


def test_failing_job_with_pause_on_error_ends_paused_with_the_error(
    start_server: Callable[..., ServerProcess], probe_methods: Path, job_env: dict[str, str]
) -> None:
    server = start_server(env=job_env)
    add_job(
        server,
        id="broken",
        method="jobprobe.fail",
        params=["boom"],
        interval_s=1,
        pause_on_error=True,
    )
    state = job_state_when(server, "broken", lambda s: s["status"] == "paused", "the job paused")
    assert state["runs"] == 1 and state["next_run_time"] is None
    assert state["last_error"]["code"] == -32000
    assert state["last_error"]["data"] == {"type": "ValueError", "message": "boom"}


def test_a_one_shot_job_runs_once_and_is_removed(
    start_server: Callable[..., ServerProcess],
    probe_methods: Path,
    job_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(env=job_env)
    runs_path = tmp_path / "runs.sqlite3"
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    add_job(
        server, id="once", method="jobprobe.record", params=[str(runs_path)], date=at.isoformat()
    )
    wait_for(lambda: rows(runs_path), 15.0, interval_s=0.1, message="the one-shot run")
    wait_for(
        lambda: server.http.get("/api/jobs/once").status_code == 404,
        15.0,
        interval_s=0.1,
        message="the one-shot job to go",
    )
    recorded = rows(runs_path)
    assert len(recorded) == 1
    assert datetime.datetime.fromisoformat(recorded[0][1]) == at


def test_a_job_past_its_time_limit_records_the_timeout(
    start_server: Callable[..., ServerProcess], job_env: dict[str, str]
) -> None:
    server = start_server(env=job_env)
    add_job(server, id="slow", method="sleep", params=[5], interval_s=3600, timeout_s=0.3)
    server.http.post("/api/jobs/slow/run")
    state = job_state_when(server, "slow", lambda s: s["status"] == "error", "the time-out")
    assert state["last_error"]["code"] == -32001


def test_a_job_survives_a_restart_once(
    start_server: Callable[..., ServerProcess],
    probe_methods: Path,
    job_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(env=job_env)
    add_job(
        server,
        id="keep",
        method="jobprobe.record",
        params=[str(tmp_path / "r.sqlite3")],
        interval_s=3600,
    )
    server.http.post("/api/jobs/keep/run")
    job_state_when(server, "keep", lambda s: s["runs"] == 1 and s["last_run_end"], "a run")
    before = get_job(server, "keep")
    assert server.stop() == 0
    again = start_server(env=job_env)
    jobs = again.http.get("/api/jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == ["keep"]
    assert jobs[0]["state"]["runs"] == 1
    assert jobs[0]["state"]["next_run_time"] == before["state"]["next_run_time"]


# ---------------------------------------------------------------- declared jobs
DECLARED = textwrap.dedent('''\
    from kit import scheduled


    @scheduled(interval_s=%s, params=["hello"])
    def tick(text):
        """A declared job."""
        return text
    ''')


def test_declared_job_follows_the_code_on_reload(
    start_server: Callable[..., ServerProcess], methods_dir: Path, job_env: dict[str, str]
) -> None:
    server = start_server(env=job_env)
    assert server.http.get("/api/jobs/declared.tick").status_code == 404
    (methods_dir / "declared.py").write_text(DECLARED % 3600)
    assert server.http.get("/sys/reset").status_code == 200
    job = get_job(server, "declared.tick")
    assert (job["method"], job["source"], job["interval_s"]) == ("declared.tick", "declared", 3600)
    server.http.post("/api/jobs/declared.tick/pause")
    (methods_dir / "declared.py").write_text(DECLARED % 1800)
    assert server.http.get("/sys/reset").status_code == 200
    changed = get_job(server, "declared.tick")
    assert changed["interval_s"] == 1800 and changed["state"]["status"] == "paused"
    assert len(server.http.get("/api/jobs").json()["jobs"]) == 1
    (methods_dir / "declared.py").unlink()
    assert server.http.get("/sys/reset").status_code == 200
    assert server.http.get("/api/jobs/declared.tick").status_code == 404


def test_declared_job_is_added_once_across_restarts(
    start_server: Callable[..., ServerProcess], methods_dir: Path, job_env: dict[str, str]
) -> None:
    (methods_dir / "declared.py").write_text(DECLARED % 3600)
    server = start_server(env=job_env)
    first = get_job(server, "declared.tick")
    server.stop()
    again = start_server(env=job_env)
    jobs = again.http.get("/api/jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == ["declared.tick"]
    assert jobs[0]["state"]["next_run_time"] == first["state"]["next_run_time"]


# ---------------------------------------------------------------- several instances
async def test_redis_lease_gives_each_occurrence_to_one_claimant(redis_url: str) -> None:
    import redis.asyncio

    run_time = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    first = RedisLease(redis.asyncio.from_url(redis_url), BusKeys("sbusr"), "one")
    second = RedisLease(redis.asyncio.from_url(redis_url), BusKeys("sbusr"), "two")
    try:
        assert await first.claim("j", run_time, 10000) is True
        assert await second.claim("j", run_time, 10000) is False
        assert await second.claim("j", run_time + datetime.timedelta(seconds=1), 10000) is True
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("database", ["sqlite", "mariadb", "postgresql"], indirect=True)
def test_two_instances_run_each_occurrence_exactly_once(
    database: dict[str, str],
    redis_url: str,
    start_server: Callable[..., ServerProcess],
    probe_methods: Path,
    job_env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = dict(job_env, SBUSR_REDIS_URL=redis_url, **database)
    first = start_server(env=env)
    second = start_server(env=env)
    runs_path = tmp_path / "runs.sqlite3"
    add_job(
        first, id="every-second", method="jobprobe.record", params=[str(runs_path)], interval_s=1
    )
    wait_for(lambda: len(rows(runs_path)) >= 8, 30.0, interval_s=0.1, message="8 occurrences")
    assert second.http.delete("/api/jobs/every-second").status_code == 200
    recorded = rows(runs_path)
    run_times = [row[1] for row in recorded]
    duplicates = sorted({t for t in run_times if run_times.count(t) > 1})
    assert not duplicates, f"occurrences ran more than once: {duplicates}"
    assert all(row[0] == "every-second" and row[1] for row in recorded)
    assert first.http.get("/api/jobs/every-second").status_code == 404
