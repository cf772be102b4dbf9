"""The server's bounds on jobs: how often, how long, how many at once, and how far to catch up.

A job spec that :func:`kit.jobs.validate_job` accepts may still ask more than one instance
should give: a run every microsecond, a time limit of years, hundreds of concurrent runs. The
settings bound it:

=========================  ============================  ===================================
setting                    checked                       default
=========================  ============================  ===================================
``job_min_interval_s``     ``interval_s``; the shortest  1 s
                           step between cron fire times
``job_max_timeout_s``      ``timeout_s``                 3600 s
``job_max_instances``      ``max_instances``             8
(fixed)                    ``misfire_grace_time_s``      :data:`MAX_MISFIRE_GRACE_S`, a day
=========================  ============================  ===================================

:func:`limit_errors` lists what a spec breaks (REST answers 400 with the list; a stored or
declared job that breaks them is paused or ignored, with a log line). :func:`catch_up_start`
keeps the walk over missed occurrences short: APScheduler computes every occurrence between a
job's stored next run time and now, on the event loop, even when only the last one runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any

from kit.jobs import build_trigger

__all__ = [
    "CATCH_UP_WINDOW_S",
    "CRON_PROBE_OCCURRENCES",
    "JobLimits",
    "MAX_MISFIRE_GRACE_S",
    "catch_up_start",
    "limit_errors",
    "whole_grace_s",
]

#: a job without a misfire grace catches up at most the occurrences of this many seconds
CATCH_UP_WINDOW_S = 3600.0
#: the largest misfire grace, seconds (a day): a run a day late is no longer that run; the
#: grace also sets how long each occurrence's lease lives, and how far back a walk starts
MAX_MISFIRE_GRACE_S = 86400.0
#: how many consecutive fire times of a cron trigger are compared with the interval floor
CRON_PROBE_OCCURRENCES = 120


@dataclasses.dataclass(frozen=True)
class JobLimits:
    """The bounds of :mod:`this module <server.scheduler.limits>`.

    Attributes:
        min_interval_s: shortest interval, and shortest step between cron fire times, seconds.
        max_timeout_s: largest ``timeout_s``, seconds.
        max_instances: largest ``max_instances``.
    """

    min_interval_s: float = 1.0
    max_timeout_s: float = 3600.0
    max_instances: int = 8


def _shortest_cron_step_s(spec: dict[str, Any]) -> float | None:
    """The shortest step between the next :data:`CRON_PROBE_OCCURRENCES` fire times, seconds
    (None: fewer than two fire times)."""
    trigger = build_trigger(spec)
    now = datetime.datetime.now(datetime.UTC)
    previous = trigger.get_next_fire_time(None, now)
    shortest: float | None = None
    for _ in range(CRON_PROBE_OCCURRENCES):
        if previous is None:
            break
        following = trigger.get_next_fire_time(previous, previous)
        if following is None:
            break
        step_s = (following - previous).total_seconds()
        shortest = step_s if shortest is None else min(shortest, step_s)
        previous = following
    return shortest


def limit_errors(spec: dict[str, Any], limits: JobLimits) -> list[dict[str, str]]:
    """What a (schema-valid) job spec asks beyond ``limits``.

    Args:
        spec: a spec as :func:`kit.jobs.validate_job` returns it.
        limits: the bounds.

    Returns:
        ``[{"path": "/interval_s", "message": "..."}, ...]``; [] when the spec is within them.

    Raises:
        kit.jobs.JobSpecError: the spec's cron trigger cannot be built.
    """
    errors: list[dict[str, str]] = []
    floor_s, floor_name = limits.min_interval_s, "SBUSR_JOB_MIN_INTERVAL_S"
    _bound(errors, "/interval_s", "interval_s", spec.get("interval_s"), floor_s, floor_name)
    if spec.get("cron") is not None:
        step_s = _shortest_cron_step_s(spec)
        _bound(errors, "/cron", "cron fire times seconds apart:", step_s, floor_s, floor_name)
    maxima = (
        ("timeout_s", limits.max_timeout_s, "SBUSR_JOB_MAX_TIMEOUT_S"),
        ("max_instances", limits.max_instances, "SBUSR_JOB_MAX_INSTANCES"),
        ("misfire_grace_time_s", MAX_MISFIRE_GRACE_S, "a day"),
    )
    for key, most, variable in maxima:
        _bound(errors, "/" + key, key, spec.get(key), most, variable, least=False)
    return errors


def _bound(
    errors: list[dict[str, str]],
    path: str,
    what: str,
    value: float | None,
    bound: float,
    variable: str,
    least: bool = True,
) -> None:
    """Append the error of ``value`` when it is below (``least``) or over ``bound``.

    Example: ``("/timeout_s", "timeout_s", 1e9, 3600, "SBUSR_JOB_MAX_TIMEOUT_S", least=False)``
    -> ``{"path": "/timeout_s", "message": "timeout_s 1e+09 is over the most allowed, 3600
    (SBUSR_JOB_MAX_TIMEOUT_S)"}``.
    """
    if value is None or (value >= bound if least else value <= bound):
        return
    relation = "below the least" if least else "over the most"
    errors.append(
        {"path": path, "message": f"{what} {value:g} is {relation} allowed, {bound:g} ({variable})"}
    )


def whole_grace_s(misfire_grace_time_s: float | None) -> int | None:
    """The misfire grace as APScheduler takes it: whole seconds, rounded up (None stays None).

    APScheduler refuses a grace that is not a positive ``int``; rounding up never skips a run
    that the server's own check (the exact grace, in ``_run_due``) would keep.
    Example: ``0.5`` -> ``1``, ``30.0`` -> ``30``.
    """
    if misfire_grace_time_s is None:
        return None
    return max(1, math.ceil(misfire_grace_time_s))


def catch_up_start(
    trigger: Any,
    next_run_time: datetime.datetime,
    now: datetime.datetime,
    misfire_grace_time_s: float | None,
) -> datetime.datetime | None:
    """Where the walk over missed occurrences of a job should start, when it is far behind.

    Occurrences older than the misfire grace are skipped anyway (their runs would start too
    late), so the walk may start at the first occurrence inside the grace; a job without a grace
    catches up at most :data:`CATCH_UP_WINDOW_S`. With ``coalesce`` one run is due either way.

    Args:
        trigger: the job's APScheduler trigger.
        next_run_time: the job's stored next run time (aware).
        now: the current time (aware).
        misfire_grace_time_s: the job's grace, seconds, or None.

    Returns:
        The new next run time (the first occurrence at or after ``now`` minus the window), or
        None when the job is not that far behind and its walk is already short.
    """
    window_s = CATCH_UP_WINDOW_S if misfire_grace_time_s is None else misfire_grace_time_s
    earliest = now - datetime.timedelta(seconds=window_s)
    if next_run_time >= earliest:
        return None
    start: datetime.datetime | None = trigger.get_next_fire_time(None, earliest)
    if start is None or start <= next_run_time:
        return None
    return start
