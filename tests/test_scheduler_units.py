"""Scheduler units: job spec validation, the decorator and its collector, state transitions."""

from __future__ import annotations

import datetime
import json
import types
from pathlib import Path
from typing import Any

import pytest

import kit
from catalog.declared_jobs import collect_declared_jobs
from kit.jobs import SCHEDULED_ATTRIBUTE, JobSpecError, scheduled, validate_job
from server.scheduler import state as job_state
from server.scheduler.lease import epoch_ms, lease_ttl_ms
from server.scheduler.service import jobs_engine
from wire.keys import BusKeys

UTC = datetime.UTC


def paths(error: JobSpecError) -> list[str]:
    return [item["path"] for item in error.errors]


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "trigger",
    [
        {"cron": "*/5 * * * *"},
        {"cron": {"hour": "2", "minute": 0}},
        {"interval_s": 0.5},
        {"date": "2030-01-01T02:00:00Z"},
    ],
)
def test_valid_triggers_are_accepted(trigger: dict[str, Any]) -> None:
    spec = validate_job({"id": "j1", "method": "a.b", **trigger})
    assert {key: spec[key] for key in trigger} == trigger


def test_defaults_are_filled_and_source_recorded() -> None:
    spec = validate_job({"id": "j1", "method": "echo", "interval_s": 5, "params": ["x"]})
    assert spec == {
        "id": "j1",
        "method": "echo",
        "params": ["x"],
        "interval_s": 5,
        "timezone": "UTC",
        "misfire_grace_time_s": 30,
        "coalesce": True,
        "max_instances": 1,
        "pause_on_error": False,
        "timeout_s": None,
        "source": "api",
    }


def test_a_trigger_is_required() -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo"})
    assert "exactly one trigger" in str(caught.value)


def test_two_triggers_are_refused() -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo", "interval_s": 1, "cron": "* * * * *"})
    assert "exactly one trigger" in str(caught.value)


@pytest.mark.parametrize(
    "change, path",
    [
        ({"cron": "61 * * * *"}, "/cron"),
        ({"cron": {"hour": "25"}}, "/cron"),
        ({"cron": {"minutes": "5"}}, "/cron"),
        ({"interval_s": 0}, "/interval_s"),
        ({"interval_s": 1e12}, "/interval_s"),
        ({"date": "tomorrow"}, "/date"),
    ],
)
def test_bad_triggers_name_the_trigger(change: dict[str, Any], path: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo", **change})
    assert path in paths(caught.value)


@pytest.mark.parametrize(
    "change, path",
    [
        ({"id": "a/b"}, "/id"),
        ({"id": ""}, "/id"),
        ({"method": "rpc.discover"}, "/method"),
        ({"method": "a..b"}, "/method"),
        ({"method": "tools._private"}, "/method"),
        ({"params": 3}, "/params"),
        ({"timezone": "Mars/Olympus"}, "/timezone"),
        ({"max_instances": 0}, "/max_instances"),
        ({"timeout_s": -1}, "/timeout_s"),
        ({"coalesce": "yes"}, "/coalesce"),
    ],
)
def test_bad_fields_are_listed_with_their_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo", "interval_s": 1, **change})
    assert path in paths(caught.value)


def test_params_over_the_size_limit_are_refused() -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo", "interval_s": 1, "params": ["x" * 40000]})
    assert paths(caught.value) == ["/params"]


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job({"id": "j1", "method": "echo", "interval_s": 1, "func": "os:system"})
    assert "func" in str(caught.value)


# ---------------------------------------------------------------- decorator and collector
def test_decorator_only_marks_the_function() -> None:
    def tick() -> int:
        return 1

    assert scheduled(interval_s=60, params={"a": 1})(tick) is tick
    assert getattr(tick, SCHEDULED_ATTRIBUTE) == [{"interval_s": 60, "params": {"a": 1}}]


def test_decorator_refuses_bad_arguments_at_import() -> None:
    with pytest.raises(JobSpecError):
        scheduled(cron="not a crontab")


def test_kit_exports_the_scheduler_helpers() -> None:
    assert {"scheduled", "current_job"} <= set(kit.__all__)
    assert kit.current_job() is None  # not inside a job run


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def test_collector_names_jobs_after_their_method() -> None:
    module = _module(
        "methods.reports",
        (
            "from kit import scheduled\n"
            "@scheduled(cron='0 2 * * *')\n"
            "def nightly(): pass\n"
            "@scheduled(interval_s=30, id='often', params=[1])\n"
            "@scheduled(interval_s=60, id='less-often')\n"
            "def poll(n=0): pass\n"
            "@scheduled(interval_s=1)\n"
            "def _private(): pass\n"
        ),
    )
    report = collect_declared_jobs([module])
    jobs = {job["id"]: job for job in report["jobs"]}
    assert report["errors"] == []
    assert sorted(jobs) == ["less-often", "often", "reports.nightly"]
    assert jobs["reports.nightly"]["method"] == "reports.nightly"
    assert jobs["often"]["method"] == "reports.poll" and jobs["often"]["params"] == [1]
    assert {job["source"] for job in jobs.values()} == {"declared"}


def test_collector_skips_imported_functions_and_reports_duplicate_ids() -> None:
    first = _module(
        "methods.one",
        "from kit import scheduled\n@scheduled(interval_s=5, id='same')\ndef a(): pass\n",
    )
    second = _module(
        "methods.two",
        "from kit import scheduled\n@scheduled(interval_s=5, id='same')\ndef b(): pass\n",
    )
    vars(second)["a"] = vars(first)["a"]  # imported from elsewhere: not second's job
    report = collect_declared_jobs([first, second])
    assert [job["method"] for job in report["jobs"]] == ["one.a"]
    assert report["errors"][0]["id"] == "same"


# ---------------------------------------------------------------- state transitions
def test_a_new_job_is_scheduled() -> None:
    assert job_state.status_of(job_state.JobState(), now_s=100.0) == "scheduled"


def test_started_is_running_until_it_ends() -> None:
    state = job_state.started(job_state.JobState(), 100.0, 140.0, "i1")
    assert (state.runs, state.last_run_start, state.instance) == (1, 100.0, "i1")
    assert job_state.status_of(state, now_s=101.0) == "running"


def test_finished_ok_records_the_result() -> None:
    state = job_state.started(job_state.JobState(), 100.0, 140.0, "i1")
    state = job_state.finished(state, 101.5, True, b'{"n":1}')
    assert job_state.status_of(state, 102.0) == "scheduled"
    rendered = job_state.render(state, None, 102.0)
    assert rendered["last_result"] == '{"n":1}' and rendered["last_error"] is None
    assert rendered["last_run_end"] == "1970-01-01T00:01:41.500000+00:00"


def test_finished_with_error_records_code_and_message() -> None:
    state = job_state.started(job_state.JobState(), 100.0, 140.0, "i1")
    error = {
        "code": -32000,
        "message": "Server error",
        "data": {"type": "ValueError", "message": "x"},
    }
    state = job_state.finished(state, 101.0, False, json.dumps(error).encode())
    assert job_state.status_of(state, 102.0) == "error"
    assert state.last_error == error and state.last_result is None


def test_a_success_after_an_error_clears_it() -> None:
    state = job_state.finished(job_state.JobState(), 1.0, False, b'{"code": 1, "message": "m"}')
    state = job_state.finished(job_state.started(state, 2.0, 9.0, "i"), 3.0, True, b"true")
    assert state.last_error is None and job_state.status_of(state, 4.0) == "scheduled"


def test_paused_and_resumed() -> None:
    state = job_state.paused(job_state.JobState())
    assert job_state.status_of(state, 1.0) == "paused"
    assert job_state.status_of(job_state.resumed(state), 1.0) == "scheduled"


def test_a_paused_job_shows_running_while_a_run_goes_on() -> None:
    state = job_state.started(job_state.paused(job_state.JobState()), 100.0, 140.0, "i1")
    assert job_state.status_of(state, 101.0) == "running"
    assert job_state.status_of(job_state.finished(state, 102.0, True, b"1"), 103.0) == "paused"


def test_a_run_whose_instance_died_shows_as_lost_after_its_deadline() -> None:
    state = job_state.started(job_state.JobState(), 100.0, 140.0, "i1")
    rendered = job_state.render(state, None, now_s=141.0)
    assert rendered["status"] == "error"
    assert rendered["last_error"] == job_state.LOST_RUN_ERROR


def test_long_results_are_truncated() -> None:
    payload = json.dumps("x" * 5000).encode()
    state = job_state.finished(job_state.JobState(), 1.0, True, payload)
    assert state.last_result is not None
    assert len(state.last_result) == job_state.RESULT_MAX_CHARS and state.last_result_truncated


def test_state_store_round_trip(tmp_path: Path) -> None:
    engine = jobs_engine(f"sqlite:///{tmp_path / 'sub' / 'jobs.sqlite3'}")
    store = job_state.StateStore(engine, "t_state")
    store.create()
    assert store.get("a") == job_state.JobState()
    store.update("a", lambda s: job_state.started(s, 1.0, 2.0, "i"))
    assert store.update("a", lambda s: None) is None
    assert store.get("a").runs == 1
    store.delete("a")
    assert store.get("a").runs == 0
    engine.dispose()


# ---------------------------------------------------------------- leases
def test_lease_key_uses_the_scheduled_time_in_ms() -> None:
    run_time = datetime.datetime(2030, 1, 1, 2, 0, 0, 250000, tzinfo=UTC)
    key = BusKeys("sbusr").job_lease("cleanup", epoch_ms(run_time))
    assert key == "sbusr:job:cleanup:1893463200250"


def test_lease_ttl_covers_grace_and_time_limit() -> None:
    assert lease_ttl_ms(30, 10) == (30 + 10 + 60) * 1000
    assert lease_ttl_ms(None, 10) == (3600 + 10 + 60) * 1000
