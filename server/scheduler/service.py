"""The scheduler of background jobs: APScheduler 3 on the server's event loop, jobs run by the pool.

A job is an RPC method name, params, a trigger and options (see :mod:`kit.jobs`).
Each one is an APScheduler job whose function is the textual reference
``server.scheduler.service:rpc_call`` and whose kwargs hold the spec (plain JSON); nothing
callable of the user's is ever stored, so jobs survive reloads and renames. Jobs live in the
database of SBUSR_DATABASE_URL (APScheduler's ``SQLAlchemyJobStore``, table ``jobs_table``),
their :mod:`state <server.scheduler.state>` in the table ``<jobs_table>_state``.

The run path::

    APScheduler _process_jobs (due jobs from the database; every instance polls it)
      -> RpcExecutor.submit_job (max_instances on this instance)
      -> JobScheduler._run_due: misfire check, one lease per occurrence (server.scheduler.lease)
      -> JobScheduler._run: state "started" -> pool.run(method, params, time limit) -> "finished"
         (with pause_on_error, a failed run pauses the job)

Declared jobs (``@scheduled``) are reported by the workers (``rpc.scheduled_jobs``) and
re-synced after start and after every reload (:meth:`JobScheduler.sync_declared`).

Bounds (:mod:`server.scheduler.limits`): a job over the server's limits is refused over REST
(400), ignored when declared, and paused with an error line when it was stored earlier (e.g.
under other settings); a job far behind its schedule skips the occurrences past its misfire
grace without walking them (:class:`SharedJobStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import sqlalchemy
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from executor.pool import Pool
from kit.db import get_engine
from kit.jobs import JOB_CONTEXT_ID, JOB_CONTEXT_RUN_TIME, JobSpecError, build_trigger
from server import tracing
from server.scheduler import state as job_state
from server.scheduler.lease import LeaseUnavailable, LocalLease, RedisLease, lease_ttl_ms
from server.scheduler.limits import JobLimits, catch_up_start, limit_errors, whole_grace_s
from settings import Settings
from wire.codec import decode_strict, encode_compact
from wire.errors import JsonRpcError
from wire.keys import BusKeys
from wire.names import instance_id
from wire.redact import redact_url

__all__ = [
    "RUN_MARGIN_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "JobExists",
    "JobNotFound",
    "JobScheduler",
    "jobs_engine",
    "rpc_call",
]

logger = logging.getLogger(__name__)

#: the textual reference stored as every job's function
RPC_CALL_REF = "server.scheduler.service:rpc_call"
#: a run counts as lost this long after its time limit (its instance stopped)
RUN_MARGIN_S = 10.0
#: on SQLite, how long a statement waits for another instance's write lock, seconds
SQLITE_BUSY_TIMEOUT_S = 30.0


class JobNotFound(LookupError):
    """No job has that id (REST: 404)."""


class JobExists(Exception):
    """A job with that id exists already (REST: 409)."""


def rpc_call(spec: dict[str, Any]) -> None:
    """The function every stored job names (by reference); jobs run through :class:`RpcExecutor`.

    Raises:
        RuntimeError: always: a job runs through the server's pool, not by calling this.
    """
    raise RuntimeError("sbusr jobs run through the server's RpcExecutor, not directly")


def jobs_engine(url: str) -> sqlalchemy.engine.Engine:
    """The engine of the jobs database (``kit.db``'s, shared in this process).

    Args:
        url: a SQLAlchemy URL (SBUSR_DATABASE_URL).

    Returns:
        A pooled engine with ``pool_pre_ping``; on SQLite the file's folder is created, the
        database is in WAL mode and a statement waits :data:`SQLITE_BUSY_TIMEOUT_S` for a lock.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL cannot be parsed.
    """
    return get_engine(url, sqlite_busy_timeout_s=SQLITE_BUSY_TIMEOUT_S, sqlite_wal_mode=True)


class SharedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]  # APScheduler 3 has no types
    """APScheduler's SQLAlchemy job store, shared by several instances.

    Another instance may remove a job between this instance's read of the due jobs and its
    write of their next run time (a DELETE over REST, a one-shot job that ran there): then
    the update or removal finds no row, which is logged and ignored instead of breaking
    APScheduler's processing round.

    Due jobs are checked before APScheduler walks their occurrences (on the event loop): one
    over ``limits`` is paused (``on_refused(job_id)`` records it in the job's state) with an
    error line; one far behind its schedule starts its walk at
    :func:`~server.scheduler.limits.catch_up_start`.

    Args:
        limits: the server's bounds on jobs.
        on_refused: told the id of each job paused for breaking ``limits``.
        *args, **kwargs: those of ``SQLAlchemyJobStore`` (``engine``, ``tablename``).
    """

    def __init__(
        self,
        *args: Any,
        limits: JobLimits | None = None,
        on_refused: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or JobLimits()
        self.on_refused = on_refused

    def get_due_jobs(self, now: datetime.datetime) -> list[Job]:
        """The jobs due at ``now``, within the limits, their catch-up walks kept short."""
        due = []
        for job in super().get_due_jobs(now):
            spec = job.kwargs.get("spec") or {}
            try:
                errors = limit_errors(spec, self.limits)
            except JobSpecError as exc:
                errors = exc.errors
            if errors:
                logger.error(
                    "job %s breaks the server's limits and is paused (delete it and add it "
                    "again within them): %s",
                    job.id,
                    JobSpecError(errors),
                )
                job._modify(next_run_time=None)
                self.update_job(job)
                if self.on_refused is not None:
                    self.on_refused(job.id)
                continue
            start = catch_up_start(
                job.trigger, job.next_run_time, now, spec.get("misfire_grace_time_s")
            )
            if start is not None:
                logger.warning(
                    "job %s is behind its schedule since %s; occurrences before %s skipped",
                    job.id,
                    job.next_run_time.isoformat(),
                    start.isoformat(),
                )
                job._modify(next_run_time=start)
                self.update_job(job)
                if start > now:
                    continue
            due.append(job)
        return due

    def update_job(self, job: Job) -> None:
        """Write the job's new next run time and spec; a job removed meanwhile is skipped."""
        try:
            super().update_job(job)
        except JobLookupError:
            logger.debug("job %s was removed by another instance", job.id)

    def remove_job(self, job_id: str) -> None:
        """Delete the job's row; one gone already is fine (callers check existence first)."""
        try:
            super().remove_job(job_id)
        except JobLookupError:
            logger.debug("job %s was removed by another instance", job_id)


class RpcExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler 3 has no types
    """APScheduler executor that hands due occurrences to :meth:`JobScheduler._run_due` as tasks."""

    def __init__(self, scheduler: JobScheduler) -> None:
        super().__init__()
        self._jobs = scheduler

    def _do_submit_job(self, job: Job, run_times: list[datetime.datetime]) -> None:
        task = self._jobs._track(self._jobs._run_due(job, run_times))

        def done(task: asyncio.Task[None]) -> None:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, [])

        task.add_done_callback(done)


class JobScheduler:
    """Jobs of one server instance: add, list, pause, resume, run now, remove; runs occurrences.

    Args:
        settings: ``database_url``, ``jobs_table``, ``redis_url``, ``bus_prefix``,
            ``rpc_timeout_s`` (default time limit), ``scheduler_poll_ms``, and the bounds
            ``job_min_interval_s``, ``job_max_timeout_s``, ``job_max_instances``.
        pool: the process pool every run goes through.

    Use from the event loop's thread. :meth:`start` before anything else.
    """

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.instance = instance_id()
        self.limits = JobLimits(
            min_interval_s=settings.job_min_interval_s,
            max_timeout_s=settings.job_max_timeout_s,
            max_instances=settings.job_max_instances,
        )
        self.engine: sqlalchemy.engine.Engine | None = None
        self.states: job_state.StateStore | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.lease: LocalLease | RedisLease = LocalLease()
        self._tasks: set[asyncio.Task[None]] = set()
        #: runs by outcome (``ok``, ``failed``), for ``sbusr_scheduler_runs_total``
        self.run_counts: dict[str, int] = {"ok": 0, "failed": 0}
        self._poll_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Open the database (tables created), start APScheduler, sync the declared jobs.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
        """
        settings = self.settings
        self.engine = jobs_engine(settings.database_url)
        self.states = job_state.StateStore(self.engine, settings.jobs_table + "_state")
        await asyncio.to_thread(self.states.create)
        store = SharedJobStore(
            engine=self.engine,
            tablename=settings.jobs_table,
            limits=self.limits,
            on_refused=self._refused,
        )
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            executors={"default": RpcExecutor(self)},
            timezone=datetime.UTC,
        )
        if settings.redis_url:
            from busclient import async_redis  # redis: loaded only with the bus on

            self.lease = RedisLease(
                async_redis(settings.redis_url),
                BusKeys(settings.bus_prefix),
                self.instance,
            )
        self.scheduler.start()
        self._poll_task = asyncio.get_running_loop().create_task(self._poll())
        logger.info(
            "scheduler %s started: jobs in %s (table %s), %s",
            self.instance,
            redact_url(settings.database_url),
            settings.jobs_table,
            "one run per occurrence across instances (Redis leases)"
            if settings.redis_url
            else "no Redis: run a single instance",
        )
        await self.sync_declared()

    async def _poll(self) -> None:
        """Look at the database every ``scheduler_poll_ms``: jobs changed by other instances."""
        interval_s = self.settings.scheduler_poll_ms / 1000.0
        while True:
            await asyncio.sleep(interval_s)
            self._apscheduler.wakeup()

    async def stop(self) -> None:
        """Fire no more occurrences (runs in progress go on; see :meth:`close`)."""
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for runs to record their state, then disconnect."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        await self.lease.close()
        if self.engine is not None:
            self.engine.dispose()

    @property
    def _states(self) -> job_state.StateStore:
        if self.states is None:
            raise RuntimeError("JobScheduler.start() was not called")
        return self.states

    @property
    def _apscheduler(self) -> AsyncIOScheduler:
        if self.scheduler is None:
            raise RuntimeError("JobScheduler.start() was not called")
        return self.scheduler

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ runs
    def _timeout_s(self, spec: dict[str, Any]) -> float:
        return spec.get("timeout_s") or self.settings.rpc_timeout_s

    async def _run_due(self, job: Job, run_times: list[datetime.datetime]) -> None:
        """Run the due occurrences of ``job`` that are not missed and that this instance claims."""
        spec = job.kwargs["spec"]
        grace_s = spec.get("misfire_grace_time_s")
        for run_time in (moment.astimezone(datetime.UTC) for moment in run_times):
            late_s = (datetime.datetime.now(datetime.UTC) - run_time).total_seconds()
            if grace_s is not None and late_s > grace_s:
                logger.warning(
                    "job %s: run time %s missed by %.1f s (grace %.1f s); skipped",
                    job.id,
                    run_time.isoformat(),
                    late_s,
                    grace_s,
                )
                continue
            try:
                ttl_ms = lease_ttl_ms(grace_s, self._timeout_s(spec))
                claimed = await self.lease.claim(job.id, run_time, ttl_ms)
            except LeaseUnavailable as exc:
                logger.error(
                    "job %s: cannot claim run time %s on Redis, skipped: %s",
                    job.id,
                    run_time.isoformat(),
                    exc,
                )
                continue
            if not claimed:
                logger.debug(
                    "job %s: run time %s taken by another instance", job.id, run_time.isoformat()
                )
                continue
            await self._run(job.id, spec, run_time, forced=False)

    async def _run(
        self, job_id: str, spec: dict[str, Any], run_time: datetime.datetime, forced: bool
    ) -> None:
        """One run: state started -> pool.run -> state finished (and paused on error if asked)."""
        timeout_s = self._timeout_s(spec)
        now_s = time.time()

        def start(current: job_state.JobState) -> job_state.JobState | None:
            if current.paused and not forced:
                return None
            return job_state.started(
                current, now_s, now_s + timeout_s + RUN_MARGIN_S, self.instance
            )

        if await asyncio.to_thread(self._states.update, job_id, start) is None:
            logger.info("job %s is paused; run time %s skipped", job_id, run_time.isoformat())
            self._pause_quietly(job_id)
            return
        context = {
            JOB_CONTEXT_ID: job_id,
            JOB_CONTEXT_RUN_TIME: run_time.isoformat(),
            "transport": "job",
        }
        started_at = time.perf_counter()
        try:
            run = self.pool.run(spec["method"], spec.get("params"), timeout_s, context)
            if tracing.active is not None:
                run = tracing.active.job_run(job_id, run_time.isoformat(), run)
            ok, payload = await run
        except JsonRpcError as error:  # ServerBusy: the queue is full
            ok, payload = False, error.to_json()
        elapsed_ms = (time.perf_counter() - started_at) * 1000.0
        self.run_counts["ok" if ok else "failed"] += 1
        pause = not ok and spec.get("pause_on_error", False)

        def finish(current: job_state.JobState) -> job_state.JobState:
            new = job_state.finished(current, time.time(), ok, payload)
            return job_state.paused(new) if pause else new

        await asyncio.to_thread(self._states.update, job_id, finish)
        if ok:
            logger.info(
                "job %s ran %s (run time %s) in %.1f ms",
                job_id,
                spec["method"],
                run_time.isoformat(),
                elapsed_ms,
            )
        else:
            logger.warning(
                "job %s: %s (run time %s) failed in %.1f ms: %s%s",
                job_id,
                spec["method"],
                run_time.isoformat(),
                elapsed_ms,
                payload[:300].decode("utf-8", "replace"),
                "; job paused (pause_on_error)" if pause else "",
            )
        if pause:
            self._pause_quietly(job_id)
        if self._apscheduler.get_job(job_id) is None:  # a one-shot job, removed after its run
            await asyncio.to_thread(self._states.delete, job_id)

    def _refused(self, job_id: str) -> None:
        """A stored job broke the limits and was paused: record it in its state."""
        try:
            self._states.update(job_id, job_state.paused)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            logger.error("job %s: cannot record its pause: %s", job_id, exc)

    def _pause_quietly(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):  # a one-shot job is gone after its run
            self._apscheduler.pause_job(job_id)

    # ------------------------------------------------------------------ jobs
    def _add(self, spec: dict[str, Any], replace: bool, paused: bool = False) -> Job:
        options: dict[str, Any] = {}
        if paused:
            options["next_run_time"] = None
        return self._apscheduler.add_job(
            RPC_CALL_REF,
            trigger=build_trigger(spec),
            id=spec["id"],
            name=spec["method"],
            kwargs={"spec": spec},
            misfire_grace_time=whole_grace_s(spec["misfire_grace_time_s"]),
            coalesce=spec["coalesce"],
            max_instances=spec["max_instances"],
            replace_existing=replace,
            **options,
        )

    def _job(self, job_id: str) -> Job:
        job = self._apscheduler.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _render(self, job: Job, state: job_state.JobState) -> dict[str, Any]:
        """The job as the REST routes show it; params that are not JSON (a job stored before
        they were checked) shown as null, with a warning, so one job never fails a listing."""
        rendered = {
            **job.kwargs["spec"],
            "state": job_state.render(state, job.next_run_time, time.time()),
        }
        try:
            encode_compact(rendered)
        except (TypeError, ValueError, RecursionError) as exc:
            logger.warning("job %s: stored params are not JSON (%s); shown as null", job.id, exc)
            rendered["params"] = None
        return rendered

    async def add_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Add a job (a spec from :func:`kit.jobs.validate_job`); return it rendered.

        Raises:
            JobSpecError: the spec is over the server's limits (:attr:`limits`).
            JobExists: a job with that id exists (its state is left alone).
        """
        errors = limit_errors(spec, self.limits)
        if errors:
            raise JobSpecError(errors)
        if self._apscheduler.get_job(spec["id"]) is not None:
            raise JobExists(spec["id"])
        await asyncio.to_thread(self._states.delete, spec["id"])  # a fresh job starts a fresh state
        try:
            job = self._add(spec, replace=False)
        except ConflictingIdError:
            raise JobExists(spec["id"]) from None
        logger.info("job %s added: %s", spec["id"], spec["method"])
        return self._render(job, job_state.JobState())

    async def list_jobs(self) -> list[dict[str, Any]]:
        """Every job, rendered (``{...spec, "state": {...}}``), ordered by next run time."""
        jobs = self._apscheduler.get_jobs()
        states = await asyncio.to_thread(self._states.get_many, [job.id for job in jobs])
        return [self._render(job, states[job.id]) for job in jobs]

    async def get_job(self, job_id: str) -> dict[str, Any]:
        """One job, rendered. Raises JobNotFound."""
        job = self._job(job_id)
        return self._render(job, await asyncio.to_thread(self._states.get, job_id))

    async def remove_job(self, job_id: str) -> None:
        """Remove a job and its state. Raises JobNotFound."""
        self._job(job_id)
        self._apscheduler.remove_job(job_id)
        await asyncio.to_thread(self._states.delete, job_id)
        logger.info("job %s removed", job_id)

    async def pause_job(self, job_id: str) -> dict[str, Any]:
        """Pause a job (a run in progress goes on). Raises JobNotFound."""
        self._job(job_id)
        state = await asyncio.to_thread(self._states.update, job_id, job_state.paused)
        self._pause_quietly(job_id)
        logger.info("job %s paused", job_id)
        return self._render(self._job(job_id), state)

    async def resume_job(self, job_id: str) -> dict[str, Any]:
        """Resume a paused job. Raises JobNotFound (also when a one-shot job's time has passed)."""
        self._job(job_id)
        state = await asyncio.to_thread(self._states.update, job_id, job_state.resumed)
        try:
            job = self._apscheduler.resume_job(job_id)
        except JobLookupError:
            raise JobNotFound(job_id) from None
        if job is None:  # a one-shot job whose time has passed is removed by APScheduler
            await asyncio.to_thread(self._states.delete, job_id)
            raise JobNotFound(job_id)
        logger.info("job %s resumed", job_id)
        return self._render(job, state)

    async def run_job_now(self, job_id: str) -> dict[str, Any]:
        """Start one run now on this instance, paused or not (the schedule is unchanged).

        Returns:
            The job rendered before the run starts. Raises JobNotFound.
        """
        job = self._job(job_id)
        now = datetime.datetime.now(datetime.UTC)
        self._track(self._run(job_id, job.kwargs["spec"], now, forced=True))
        return self._render(job, await asyncio.to_thread(self._states.get, job_id))

    async def sync_declared(self) -> dict[str, list[str]]:
        """Bring the declared jobs in line with the code the workers run now.

        Asks the workers (``rpc.scheduled_jobs``) for the ``@scheduled`` declarations; adds the
        new ones, replaces the changed ones (keeping state and pause), removes the declared
        jobs no longer in the code. A job added over REST with the same id wins (warning).

        Returns:
            ``{"added": [ids], "changed": [ids], "removed": [ids]}``; all empty when the workers
            could not answer (logged as an error).
        """
        summary: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        try:
            ok, payload = await self.pool.run(
                "rpc.scheduled_jobs", None, self.settings.rpc_timeout_s
            )
        except JsonRpcError as error:
            logger.error("cannot collect the declared jobs: %s", error)
            return summary
        if not ok:
            logger.error("cannot collect the declared jobs: %s", payload.decode("utf-8", "replace"))
            return summary
        report = decode_strict(payload)
        for refused in report["errors"]:
            logger.error("declared job %s ignored: %s", refused["id"], refused["message"])
        declared = {spec["id"]: spec for spec in report["jobs"]}
        existing = {job.id: job for job in self._apscheduler.get_jobs()}
        for job_id, job in existing.items():
            if job.kwargs["spec"].get("source") == "declared" and job_id not in declared:
                self._apscheduler.remove_job(job_id)  # SharedJobStore: gone already is fine
                await asyncio.to_thread(self._states.delete, job_id)
                summary["removed"].append(job_id)
        for job_id, spec in list(declared.items()):
            errors = limit_errors(spec, self.limits)
            if errors:
                logger.error("declared job %s ignored: %s", job_id, JobSpecError(errors))
                continue
            job = existing.get(job_id)
            if job is None:
                try:
                    self._add(spec, replace=False)
                except ConflictingIdError:  # another instance added it
                    continue
                summary["added"].append(job_id)
            elif job.kwargs["spec"].get("source") != "declared":
                logger.warning("declared job %s ignored: a job added over REST has that id", job_id)
            elif job.kwargs["spec"] != spec:
                self._add(spec, replace=True, paused=job.next_run_time is None)
                summary["changed"].append(job_id)
        if any(summary.values()):
            logger.info("declared jobs synced: %s", summary)
        return summary
