"""Scheduled jobs: what a job is (its spec), the ``@scheduled`` decorator, :func:`current_job`.

A job spec is plain JSON, the same for a job added over REST (``POST /api/jobs``) and for a
job declared in a methods module with :func:`scheduled`::

    {"id": "cleanup", "method": "db.cleanup", "params": {"days": 30},
     "cron": "0 2 * * *",                # or {"hour": "2", "minute": "0"}, or
     # "interval_s": 30,                 # every 30 seconds, or
     # "date": "2030-01-01T02:00:00Z",   # once
     "timezone": "UTC", "misfire_grace_time_s": 30, "coalesce": true, "max_instances": 1,
     "pause_on_error": false, "timeout_s": null}

:func:`validate_job` checks a spec (JSON Schema, then the trigger itself) and fills the
defaults; :func:`build_trigger` turns it into an APScheduler trigger. Nothing here schedules
anything: the server's scheduler (``server/scheduler``) does, and it never imports the user's
methods. The workers report the declared jobs through ``rpc.scheduled_jobs``
(:mod:`catalog.declared_jobs`).

:func:`current_job` tells a method that runs as a job which job and which occurrence it is.
"""

from __future__ import annotations

import copy
import datetime as _datetime
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from executor.context import call_context
from wire.codec import encode_compact
from wire.names import RESERVED_PREFIX
from wire.schema import LazyValidator, error_list

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "JobSpecError",
    "JOB_SCHEMA",
    "SCHEDULED_ATTRIBUTE",
    "TRIGGER_KEYS",
    "scheduled",
    "validate_job",
    "build_trigger",
    "PARAMS_MAX_BYTES",
    "current_job",
    "JOB_CONTEXT_ID",
    "JOB_CONTEXT_RUN_TIME",
]

#: attribute of a decorated function: a list of job specs (without ``method``)
SCHEDULED_ATTRIBUTE = "__sbusr_scheduled__"
#: keys of the call context the scheduler sets for a job's run (see :func:`current_job`)
JOB_CONTEXT_ID = "job_id"
JOB_CONTEXT_RUN_TIME = "job_run_time"
#: exactly one of these names the trigger
TRIGGER_KEYS = ("cron", "interval_s", "date")
#: largest params of a job, as compact JSON bytes (jobs are stored in a database row)
PARAMS_MAX_BYTES = 32 * 1024

_NAME = r"[A-Za-z][A-Za-z0-9_]*"  # a segment starting with "_" is never reachable
_CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")

#: JSON Schema (draft 2020-12) of a job spec as sent to ``POST /api/jobs``.
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,190}$"},
        "method": {
            "type": "string",
            "pattern": rf"^(?!{re.escape(RESERVED_PREFIX)}){_NAME}(\.{_NAME})*$",
            "maxLength": 400,
        },
        "params": {"type": ["object", "array", "null"]},
        "cron": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        field: {"type": ["string", "integer"]} for field in _CRON_FIELDS
                    },
                },
            ]
        },
        "interval_s": {"type": "number", "exclusiveMinimum": 0},
        "date": {"type": "string", "minLength": 1},
        "timezone": {"type": "string", "minLength": 1},
        "misfire_grace_time_s": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "coalesce": {"type": "boolean"},
        "max_instances": {"type": "integer", "minimum": 1},
        "pause_on_error": {"type": "boolean"},
        "timeout_s": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "required": ["id", "method"],
    "additionalProperties": False,
    "oneOf": [{"required": [key]} for key in TRIGGER_KEYS],
}

#: the options and their defaults (``timeout_s`` None: the server's SBUSR_RPC_TIMEOUT)
DEFAULTS: dict[str, Any] = {
    "params": None,
    "timezone": "UTC",
    "misfire_grace_time_s": 30,
    "coalesce": True,
    "max_instances": 1,
    "pause_on_error": False,
    "timeout_s": None,
}

_VALIDATOR = LazyValidator(JOB_SCHEMA)  # jsonschema is imported by the first validate_job

Function = TypeVar("Function", bound=Callable[..., Any])


class JobSpecError(ValueError):
    """A job spec is invalid.

    Attributes:
        errors: ``[{"path": "/cron", "message": "..."}, ...]``, one per problem.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join("{}: {}".format(e["path"], e["message"]) for e in errors))


def _reworded(error: jsonschema.ValidationError) -> str:
    """The message of one schema error; the top-level ``oneOf`` (the trigger) said plainly."""
    if error.validator == "oneOf" and not error.absolute_path:
        return "exactly one trigger is required: one of {}".format(", ".join(TRIGGER_KEYS))
    return error.message


def _params_errors(params: Any) -> list[dict[str, str]]:
    """Why ``params`` cannot be stored: not JSON, or over :data:`PARAMS_MAX_BYTES`; [] if fine."""
    try:
        size_bytes = len(encode_compact(params))
    except (TypeError, ValueError, RecursionError) as exc:
        return [{"path": "/params", "message": f"params are not JSON: {exc}"}]
    if size_bytes > PARAMS_MAX_BYTES:
        return [{"path": "/params", "message": f"params over {PARAMS_MAX_BYTES} bytes of JSON"}]
    return []


def validate_job(spec: Any, source: str = "api") -> dict[str, Any]:
    """Check a job spec and return it normalised: defaults filled, ``source`` added.

    Args:
        spec: the decoded JSON body (or the decorator's arguments plus ``id``, ``method``).
        source: ``"api"`` (REST) or ``"declared"`` (``@scheduled``).

    Returns:
        A new dict with every key of :data:`JOB_SCHEMA`'s options, the one trigger key and
        ``source``.

    Raises:
        JobSpecError: the spec fails the schema, its params are not JSON or over
            :data:`PARAMS_MAX_BYTES`, or its trigger cannot be built (bad crontab, unknown
            time zone, a date that is not ISO 8601); ``errors`` lists why.
    """
    errors = error_list(_VALIDATOR.iter_errors(spec), message=_reworded)
    if not errors:
        errors = _params_errors(spec.get("params"))
    if errors:
        raise JobSpecError(errors)
    given = copy.deepcopy(spec)
    trigger = next(key for key in TRIGGER_KEYS if key in given)
    normalised = {
        "id": given["id"],
        "method": given["method"],
        "params": None,
        trigger: given[trigger],
        **DEFAULTS,
        **given,
        "source": source,
    }
    _check_first_fire_time(build_trigger(normalised), trigger)  # both raise JobSpecError
    return normalised


def _check_first_fire_time(trigger: Any, key: str) -> None:
    """Refuse a trigger whose first fire time has no UTC time (the job store keeps UTC), e.g.
    ``"9999-12-31T23:59:59-14:00"``, which is in the year 10000 in UTC.

    Raises:
        JobSpecError: that time is past year 9999 or before year 1 in UTC.
    """
    now = _datetime.datetime.now(_datetime.UTC)
    try:
        first = trigger.get_next_fire_time(None, now)
        if first is not None:
            first.astimezone(_datetime.UTC)
    except (ValueError, OverflowError) as exc:
        message = f"the first run time is out of range in UTC: {exc}"
        raise JobSpecError([{"path": "/" + key, "message": message}]) from None


def build_trigger(spec: dict[str, Any]) -> Any:
    """Build the APScheduler trigger of a (schema-valid) spec.

    Returns:
        A ``CronTrigger``, ``IntervalTrigger`` or ``DateTrigger`` in the spec's time zone.
        An interval's first run is one interval from now.

    Raises:
        JobSpecError: a bad crontab or cron field, an unknown time zone, or a bad date.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    try:
        timezone = ZoneInfo(spec.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise JobSpecError(
            [{"path": "/timezone", "message": f"unknown time zone: {exc}"}]
        ) from None
    key = next(key for key in TRIGGER_KEYS if key in spec)
    value = spec[key]
    try:
        if key == "cron":
            if isinstance(value, str):
                return CronTrigger.from_crontab(value, timezone=timezone)
            return CronTrigger(timezone=timezone, **value)
        if key == "interval_s":
            return IntervalTrigger(seconds=value, timezone=timezone)
        run_date = _datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return DateTrigger(run_date=run_date, timezone=timezone)
    except (ValueError, TypeError, OverflowError) as exc:
        raise JobSpecError([{"path": "/" + key, "message": str(exc)}]) from None


def scheduled(
    cron: str | dict[str, Any] | None = None,
    *,
    interval_s: float | None = None,
    date: str | None = None,
    id: str | None = None,
    params: Any = None,
    **options: Any,
) -> Callable[[Function], Function]:
    """Declare that a method runs as a scheduled job (no side effect but an attribute).

    Args:
        cron: a crontab string (``"*/5 * * * *"``) or cron fields (``{"hour": "2"}``).
        interval_s: or: run every ``interval_s`` seconds.
        date: or: run once at this ISO 8601 time.
        id: the job id; default: the method's name (e.g. ``"cleanup.purge"``).
        params: the params of every run (a list or a dict), default none.
        options: ``timezone``, ``misfire_grace_time_s``, ``coalesce``, ``max_instances``,
            ``pause_on_error``, ``timeout_s`` (see docs/scheduler.md).

    Returns:
        A decorator that records the job on the function and returns it unchanged; stacking
        several gives several jobs (each needs its own ``id``).

    Raises:
        JobSpecError: the arguments are invalid (at import of the module, so a reload with a
            bad declaration fails and the old code keeps serving).

    Example::

        @scheduled(cron="0 2 * * *", params={"days": 30})
        def purge(days): ...
    """
    declaration: dict[str, Any] = dict(options)
    for key, value in (
        ("cron", cron),
        ("interval_s", interval_s),
        ("date", date),
        ("id", id),
        ("params", params),
    ):
        if value is not None:
            declaration[key] = value
    probe = {"id": declaration.get("id", "declared"), "method": "declared", **declaration}
    validate_job(probe, source="declared")

    def decorate(function: Function) -> Function:
        declarations = list(getattr(function, SCHEDULED_ATTRIBUTE, []))
        declarations.append(declaration)
        setattr(function, SCHEDULED_ATTRIBUTE, declarations)
        return function

    return decorate


def current_job() -> dict[str, str] | None:
    """Inside a method: which job occurrence this call is, or None when not run as a job.

    Returns:
        ``{"id": job id, "scheduled_run_time": ISO 8601 UTC}`` for a scheduled run (a run
        started with ``POST /api/jobs/{id}/run`` has the time it was asked for).
    """
    context = call_context.get() or {}
    if JOB_CONTEXT_ID not in context:
        return None
    return {"id": context[JOB_CONTEXT_ID], "scheduled_run_time": context.get(JOB_CONTEXT_RUN_TIME)}
