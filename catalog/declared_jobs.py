"""The ``@scheduled`` declarations of the imported methods package, as job specs.

Runs in worker processes only (it looks at the imported user code); the worker answers
``rpc.scheduled_jobs`` with :func:`collect_declared_jobs` (see :mod:`catalog.rpc_methods`).
The spec itself and the decorator are :mod:`kit.jobs`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any, TypedDict

from executor.resolve import PACKAGE, is_inside_package
from kit.jobs import SCHEDULED_ATTRIBUTE, JobSpecError, validate_job

__all__ = ["DeclaredJobs", "collect_declared_jobs", "imported_method_modules"]


class DeclaredJobs(TypedDict):
    """The report of ``rpc.scheduled_jobs``: valid specs, and why the others were left out."""

    jobs: list[dict[str, Any]]
    errors: list[dict[str, str]]


def imported_method_modules() -> list[ModuleType]:
    """The modules of the methods package imported in this process, sorted by name."""
    return [
        module
        for name, module in sorted(sys.modules.items())
        if isinstance(module, ModuleType) and is_inside_package(name)
    ]


def collect_declared_jobs(modules: Iterable[ModuleType]) -> DeclaredJobs:
    """Find the ``@scheduled`` functions defined in ``modules`` (functions at module level).

    Args:
        modules: imported modules of the methods package.

    Returns:
        ``{"jobs": [spec, ...], "errors": [{"id", "message"}, ...]}``: normalised specs with
        ``source`` ``"declared"``; a second job with an id already taken is an error.
    """
    jobs: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    for module in modules:
        module_name = module.__name__
        prefix = module_name[len(PACKAGE) + 1 :] + "." if module_name != PACKAGE else ""
        for name, function in sorted(vars(module).items()):
            if (
                name.startswith("_")
                or not inspect.isfunction(function)
                or function.__module__ != module_name
            ):
                continue
            for declaration in getattr(function, SCHEDULED_ATTRIBUTE, ()):
                method = prefix + name
                spec = {"id": method, **declaration, "method": method}
                if spec["id"] in jobs:
                    taken_by = jobs[spec["id"]]["method"]
                    errors.append(
                        {
                            "id": spec["id"],
                            "message": f"job id declared twice ({taken_by} and {method})",
                        }
                    )
                    continue
                try:
                    jobs[spec["id"]] = validate_job(spec, source="declared")
                except JobSpecError as exc:
                    errors.append({"id": spec["id"], "message": str(exc)})
    return {"jobs": list(jobs.values()), "errors": errors}
