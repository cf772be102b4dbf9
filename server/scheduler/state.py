"""The ``state`` of a job: what its runs did, kept in the database next to APScheduler's jobs.

:class:`JobState` is one row of the table ``<jobs_table>_state``; the transitions
(:func:`started`, :func:`finished`, :func:`paused`, :func:`resumed`) are pure functions, and
:class:`StateStore` applies one in a transaction (read, change, write)::

    scheduled --started--> running --finished(ok)--> scheduled
                                   --finished(error)--> error (or paused with pause_on_error)
    any --paused--> paused --resumed--> scheduled (or error when the last run failed)

The public status is derived (:func:`status_of`): ``running`` while a run started and has not
ended and its deadline (start + time limit + a margin) has not passed; then ``paused`` when
paused; then ``error`` when the last run failed or never ended (its instance stopped);
else ``scheduled``. Times are UTC epoch seconds in the row, ISO 8601 in :func:`render`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Callable
from typing import Any, overload

import sqlalchemy
from sqlalchemy.engine import Engine

from wire.codec import decode_strict
from wire.errors import InternalError, WorkerDied

__all__ = [
    "JobState",
    "StateStore",
    "started",
    "finished",
    "paused",
    "resumed",
    "status_of",
    "render",
    "RESULT_MAX_CHARS",
    "LOST_RUN_ERROR",
]

logger = logging.getLogger(__name__)

#: the result JSON text kept in the state is cut at this many characters
RESULT_MAX_CHARS = 1000
#: last_error shown for a run whose instance stopped before it ended
LOST_RUN_ERROR = {
    "code": WorkerDied.code,
    "message": "the run did not end: the instance running it stopped",
}


@dataclasses.dataclass(frozen=True)
class JobState:
    """What is known about a job's runs (one row of the state table).

    Attributes:
        paused: the job is paused (no scheduled runs; ``run`` still works).
        runs: runs started so far.
        last_run_start: start of the last run, UTC epoch seconds, or None.
        last_run_end: end of the last run, UTC epoch seconds, or None while it runs.
        running_until: while a run is in progress: when it counts as lost (epoch seconds).
        last_ok: True/False for the last run's outcome; None before the first run ends.
        last_result: the last result as JSON text, at most :data:`RESULT_MAX_CHARS` characters.
        last_result_truncated: the JSON text was longer and was cut.
        last_error: ``{"code", "message"}`` of the last failed run (kept until one succeeds).
        instance: the server instance that ran the last run.
    """

    paused: bool = False
    runs: int = 0
    last_run_start: float | None = None
    last_run_end: float | None = None
    running_until: float | None = None
    last_ok: bool | None = None
    last_result: str | None = None
    last_result_truncated: bool = False
    last_error: dict[str, Any] | None = None
    instance: str | None = None


def started(state: JobState, now_s: float, deadline_s: float, instance: str) -> JobState:
    """A run starts at ``now_s``; it counts as lost after ``deadline_s`` (epoch seconds)."""
    return dataclasses.replace(
        state,
        runs=state.runs + 1,
        last_run_start=now_s,
        last_run_end=None,
        running_until=deadline_s,
        instance=instance,
    )


def finished(state: JobState, now_s: float, ok: bool, payload: bytes) -> JobState:
    """A run ended at ``now_s``: ``ok`` with the result JSON, or not with the error object JSON.

    A success records the result (cut at :data:`RESULT_MAX_CHARS`) and clears ``last_error``;
    a failure records ``{"code", "message"}`` of the error object and clears the result.
    """
    if ok:
        text = payload.decode("utf-8", "replace")
        return dataclasses.replace(
            state,
            last_run_end=now_s,
            running_until=None,
            last_ok=True,
            last_result=text[:RESULT_MAX_CHARS],
            last_result_truncated=len(text) > RESULT_MAX_CHARS,
            last_error=None,
        )
    try:
        error = decode_strict(payload)
        error = {
            "code": error["code"],
            "message": error["message"],
            **(
                {"data": error["data"]}
                if isinstance(error.get("data"), dict)
                and len(json.dumps(error["data"])) <= RESULT_MAX_CHARS
                else {}
            ),
        }
    except (ValueError, KeyError, TypeError):
        error = {
            "code": InternalError.code,
            "message": payload.decode("utf-8", "replace")[:RESULT_MAX_CHARS],
        }
    return dataclasses.replace(
        state,
        last_run_end=now_s,
        running_until=None,
        last_ok=False,
        last_result=None,
        last_result_truncated=False,
        last_error=error,
    )


def paused(state: JobState) -> JobState:
    """The job is paused (by a request, or by ``pause_on_error`` after a failed run)."""
    return dataclasses.replace(state, paused=True)


def resumed(state: JobState) -> JobState:
    """The job is resumed: scheduled runs happen again."""
    return dataclasses.replace(state, paused=False)


def _is_running(state: JobState, now_s: float) -> bool:
    return state.running_until is not None and now_s < state.running_until


def _is_lost(state: JobState, now_s: float) -> bool:
    return state.running_until is not None and now_s >= state.running_until


def status_of(state: JobState, now_s: float) -> str:
    """The public status: ``running``, ``paused``, ``error`` or ``scheduled`` (see module doc)."""
    if _is_running(state, now_s):
        return "running"
    if state.paused:
        return "paused"
    if state.last_ok is False or _is_lost(state, now_s):
        return "error"
    return "scheduled"


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).isoformat()


def render(
    state: JobState, next_run_time: datetime.datetime | None, now_s: float
) -> dict[str, Any]:
    """The ``state`` object of a job as the REST API shows it.

    Returns:
        ``{"status", "runs", "last_run_start", "last_run_end", "last_result",
        "last_result_truncated", "last_error", "next_run_time", "instance"}``; times ISO 8601
        UTC strings or null; ``last_result`` is the result's JSON text.
    """
    last_error = state.last_error
    if _is_lost(state, now_s) and state.last_run_end is None:
        last_error = LOST_RUN_ERROR
    return {
        "status": status_of(state, now_s),
        "runs": state.runs,
        "last_run_start": _iso(state.last_run_start),
        "last_run_end": _iso(state.last_run_end),
        "last_result": state.last_result,
        "last_result_truncated": state.last_result_truncated,
        "last_error": last_error,
        "next_run_time": next_run_time.astimezone(datetime.UTC).isoformat()
        if next_run_time is not None
        else None,
        "instance": state.instance,
    }


class StateStore:
    """Job states in the table ``table_name`` of ``engine`` (created when missing).

    Args:
        engine: a SQLAlchemy engine (SQLite, MariaDB/MySQL, PostgreSQL).
        table_name: the table; one row per job id.

    Every method is blocking (run it in a thread from the event loop) and may raise
    :class:`sqlalchemy.exc.SQLAlchemyError` when the database fails.
    """

    def __init__(self, engine: Engine, table_name: str) -> None:
        self.engine = engine
        self.table = sqlalchemy.Table(
            table_name,
            sqlalchemy.MetaData(),
            sqlalchemy.Column("id", sqlalchemy.Unicode(191), primary_key=True),
            sqlalchemy.Column("state", sqlalchemy.UnicodeText, nullable=False),
        )

    def create(self) -> None:
        """Create the table when it does not exist."""
        self.table.create(self.engine, checkfirst=True)

    def get_many(self, job_ids: list[str]) -> dict[str, JobState]:
        """The states of ``job_ids`` (a fresh :class:`JobState` for an id without a row)."""
        states = {job_id: JobState() for job_id in job_ids}
        if not job_ids:
            return states
        with self.engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.select(self.table.c.id, self.table.c.state).where(
                    self.table.c.id.in_(job_ids)
                )
            )
            for job_id, text in rows:
                states[job_id] = JobState(**json.loads(text))
        return states

    def get(self, job_id: str) -> JobState:
        """The state of one job (a fresh :class:`JobState` when it has no row)."""
        return self.get_many([job_id])[job_id]

    @overload
    def update(self, job_id: str, change: Callable[[JobState], JobState]) -> JobState: ...

    @overload
    def update(
        self, job_id: str, change: Callable[[JobState], JobState | None]
    ) -> JobState | None: ...

    def update(self, job_id: str, change: Callable[[JobState], JobState | None]) -> JobState | None:
        """Apply ``change`` to the job's state in one transaction (row locked on MySQL/PostgreSQL).

        Args:
            job_id: the job.
            change: gets the current state, returns the new one, or None to leave it as it is.

        Returns:
            The new state, or None when ``change`` returned None.
        """
        for attempt in (1, 2):
            try:
                with self.engine.begin() as connection:
                    query = sqlalchemy.select(self.table.c.state).where(self.table.c.id == job_id)
                    if self.engine.dialect.name != "sqlite":
                        query = query.with_for_update()
                    text = connection.execute(query).scalar()
                    current = JobState(**json.loads(text)) if text is not None else JobState()
                    new = change(current)
                    if new is None:
                        return None
                    encoded = json.dumps(dataclasses.asdict(new))
                    if text is None:
                        connection.execute(self.table.insert().values(id=job_id, state=encoded))
                    else:
                        connection.execute(
                            self.table.update()
                            .where(self.table.c.id == job_id)
                            .values(state=encoded)
                        )
                    return new
            except sqlalchemy.exc.IntegrityError:  # another instance inserted the row first
                if attempt == 2:
                    raise
        return None

    def delete(self, job_id: str) -> None:
        """Forget the state of a job (its job was removed)."""
        with self.engine.begin() as connection:
            connection.execute(self.table.delete().where(self.table.c.id == job_id))
