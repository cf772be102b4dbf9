"""Moved to :mod:`kit.jobs` (the job spec, ``@scheduled``, ``current_job``) and
:mod:`catalog.declared_jobs` (the collector behind ``rpc.scheduled_jobs``).

A re-export until ``server/scheduler/handlers.py`` imports from :mod:`kit.jobs`; delete it then.
"""

from __future__ import annotations

from catalog.declared_jobs import collect_declared_jobs
from kit.jobs import (
    JOB_CONTEXT_ID,
    JOB_CONTEXT_RUN_TIME,
    JOB_SCHEMA,
    PARAMS_MAX_BYTES,
    SCHEDULED_ATTRIBUTE,
    TRIGGER_KEYS,
    JobSpecError,
    build_trigger,
    current_job,
    scheduled,
    validate_job,
)

__all__ = [
    "JOB_CONTEXT_ID",
    "JOB_CONTEXT_RUN_TIME",
    "JOB_SCHEMA",
    "PARAMS_MAX_BYTES",
    "SCHEDULED_ATTRIBUTE",
    "TRIGGER_KEYS",
    "JobSpecError",
    "build_trigger",
    "collect_declared_jobs",
    "current_job",
    "scheduled",
    "validate_job",
]
