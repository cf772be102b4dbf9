"""REST routes of the scheduler (design.md, "REST helpers", Jobs).

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

Every route answers 503 when the scheduler is off (SBUSR_SCHEDULER=0).

A job is its spec (see :mod:`executor.scheduled`) plus ``"state"`` (see
:func:`server.scheduler.state.render`). Errors are ``{"error": {"code", "message",
"details"?}}`` through :class:`server.base.RestError`.
"""

from __future__ import annotations

import json
from typing import Any

from executor.scheduled import JobSpecError, validate_job
from server.base import BaseHandler, RestError
from server.scheduler.service import JobExists, JobNotFound, JobScheduler

__all__ = ["JobsHandler", "JobHandler", "JobActionHandler", "job_routes"]

_JOB_ID = r"([A-Za-z0-9][A-Za-z0-9._:@-]{0,190})"


class _JobsBase(BaseHandler):
    """Holds the :class:`JobScheduler`; maps its errors to REST errors."""

    def initialize(self, scheduler: JobScheduler | None) -> None:
        self.scheduler = scheduler

    def prepare(self) -> None:
        super().prepare()
        if self.scheduler is None:
            raise RestError(503, "the scheduler is off (SBUSR_SCHEDULER=0)")

    def _not_found(self, job_id: str) -> RestError:
        return RestError(404, f"no job {job_id!r}")


class JobsHandler(_JobsBase):
    """``GET /api/jobs`` (every job) and ``POST /api/jobs`` (add one)."""

    async def get(self) -> None:
        self.write_json({"jobs": await self.scheduler.list_jobs()})

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise RestError(
                400, "the body is not JSON", details=[{"path": "/", "message": str(exc)}]
            ) from None
        try:
            spec = validate_job(body, source="api")
        except JobSpecError as exc:
            raise RestError(400, "invalid job", details=exc.errors) from None
        try:
            job = await self.scheduler.add_job(spec)
        except JobExists:
            raise RestError(409, "a job with id {!r} exists".format(spec["id"])) from None
        self.set_header("Location", "/api/jobs/{}".format(spec["id"]))
        self.write_json(job, status=201)


class JobHandler(_JobsBase):
    """``GET /api/jobs/{id}`` and ``DELETE /api/jobs/{id}``."""

    async def get(self, job_id: str) -> None:
        try:
            self.write_json(await self.scheduler.get_job(job_id))
        except JobNotFound:
            raise self._not_found(job_id) from None

    async def delete(self, job_id: str) -> None:
        try:
            await self.scheduler.remove_job(job_id)
        except JobNotFound:
            raise self._not_found(job_id) from None
        self.write_json({"id": job_id, "deleted": True})


class JobActionHandler(_JobsBase):
    """``POST /api/jobs/{id}/pause|resume|run``."""

    async def post(self, job_id: str, action: str) -> None:
        operations = {
            "pause": (self.scheduler.pause_job, 200),
            "resume": (self.scheduler.resume_job, 200),
            "run": (self.scheduler.run_job_now, 202),
        }
        operation, status = operations[action]
        try:
            job = await operation(job_id)
        except JobNotFound:
            raise self._not_found(job_id) from None
        self.write_json(job, status=status)


def job_routes(scheduler: JobScheduler | None) -> list[tuple[str, Any, dict[str, Any]]]:
    """The ``(pattern, handler, kwargs)`` rules of the job routes, for ``make_app(extra_routes=...)``.

    With ``scheduler`` None (SBUSR_SCHEDULER=0) every job route answers 503.
    """
    kwargs = {"scheduler": scheduler}
    return [
        (r"/api/jobs", JobsHandler, kwargs),
        (rf"/api/jobs/{_JOB_ID}", JobHandler, kwargs),
        (rf"/api/jobs/{_JOB_ID}/(pause|resume|run)", JobActionHandler, kwargs),
    ]
