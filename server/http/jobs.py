"""REST routes of the scheduler (design.md, "REST helpers", Jobs; docs/scheduler.md).

=======  ==========================  =============================================
GET      /api/jobs                   200 ``{"jobs": [job, ...]}``
POST     /api/jobs                   201 job; 400 invalid body (``details``: the
                                     schema errors ``[{"path", "message"}]``); 409
                                     the id exists
GET      /api/jobs/{id}              200 job; 404 unknown id
DELETE   /api/jobs/{id}              200 ``{"id", "deleted": true}``; 404
POST     /api/jobs/{id}/pause        200 job (status ``paused``); 404
POST     /api/jobs/{id}/resume       200 job; 404
POST     /api/jobs/{id}/run          202 job: a run starts now on this instance; 404
=======  ==========================  =============================================

Every route answers 503 when the scheduler is off (SBUSR_SCHEDULER=0). The 400 (spec), 404
and 409 are the scheduler's errors, mapped in :mod:`server.http.errors`.

A job is its spec (see :mod:`kit.jobs`) plus ``"state"`` (see
:func:`server.scheduler.state.render`).
"""

from __future__ import annotations

from executor.encoding import readable_errors
from kit.jobs import JobSpecError, validate_job
from server.http.base import BaseHandler
from server.http.errors import RestError
from server.scheduler.service import JobScheduler

__all__ = ["JOB_ID_PATTERN", "JobActionHandler", "JobHandler", "JobsHandler"]

#: A job id in a route: the one group of the pattern.
JOB_ID_PATTERN = r"([A-Za-z0-9][A-Za-z0-9._:@-]{0,190})"


class _JobsBase(BaseHandler):
    """Holds the :class:`JobScheduler`; 503 when it is off.

    Handler kwargs: ``scheduler`` (None when SBUSR_SCHEDULER=0), ``auth_token``.
    """

    scheduler: JobScheduler

    def initialize(self, scheduler: JobScheduler | None, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self._scheduler = scheduler
        self.auth_token = auth_token

    def prepare(self) -> None:
        super().prepare()
        if self._scheduler is None:
            raise RestError(503, "the scheduler is off (SBUSR_SCHEDULER=0)")
        self.scheduler = self._scheduler


class JobsHandler(_JobsBase):
    """``GET /api/jobs`` (every job) and ``POST /api/jobs`` (add one)."""

    async def get(self) -> None:
        """Answer every job."""
        self.write_json({"jobs": await self.scheduler.list_jobs()})

    async def post(self) -> None:
        """Add the job of the body; 201 with ``Location``."""
        try:
            spec = validate_job(self.json_body(), source="api")
        except JobSpecError as error:  # messages may quote the body, lone surrogates included
            raise JobSpecError(readable_errors(error.errors)) from None
        job = await self.scheduler.add_job(spec)
        self.set_header("Location", "/api/jobs/{}".format(spec["id"]))
        self.write_json(job, status=201)


class JobHandler(_JobsBase):
    """``GET /api/jobs/{id}`` and ``DELETE /api/jobs/{id}``."""

    async def get(self, job_id: str) -> None:
        """Answer one job."""
        self.write_json(await self.scheduler.get_job(job_id))

    async def delete(self, job_id: str) -> None:
        """Remove one job."""
        await self.scheduler.remove_job(job_id)
        self.write_json({"id": job_id, "deleted": True})


class JobActionHandler(_JobsBase):
    """``POST /api/jobs/{id}/pause|resume|run``."""

    async def post(self, job_id: str, action: str) -> None:
        """Pause, resume or run one job now (202)."""
        operations = {
            "pause": (self.scheduler.pause_job, 200),
            "resume": (self.scheduler.resume_job, 200),
            "run": (self.scheduler.run_job_now, 202),
        }
        operation, status = operations[action]
        self.write_json(await operation(job_id), status=status)
