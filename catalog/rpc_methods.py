"""Every worker-side ``rpc.*`` method: the server's own methods that need the user's code.

Importing this module registers them with :mod:`executor.internal` (it is listed in
``executor.internal.INTERNAL_MODULES``, which the worker imports at start). Only the server
submits these names; resolution refuses ``rpc.`` for callers.

=====================  ==========================================  ===========================
method                 params                                      result
=====================  ==========================================  ===========================
``rpc.discover``       ``{"title"?, "version"?}`` or none          the OpenRPC document
                                                                   (:mod:`catalog.openrpc`)
``rpc.scheduled_jobs`` none                                        ``{"jobs", "errors"}``
                                                                   (:mod:`catalog.declared_jobs`)
=====================  ==========================================  ===========================
"""

from __future__ import annotations

from typing import Any

from catalog.declared_jobs import DeclaredJobs, collect_declared_jobs, imported_method_modules
from executor.internal import internal_method

__all__ = ["discover", "scheduled_jobs"]


@internal_method("rpc.discover")
def discover(params: Any) -> dict[str, Any]:
    """``rpc.discover``: params ``{"title"?, "version"?}`` (or none).

    Returns:
        The OpenRPC document of :func:`catalog.openrpc.build_document`.

    :mod:`catalog.openrpc` (and pydantic's JSON Schema generation) is imported by the first
    call in each worker, not by the worker template: an idle worker does not hold it.
    """
    from catalog.openrpc import build_document

    options = params if isinstance(params, dict) else {}
    return build_document(str(options.get("title", "sbusr")), str(options.get("version", "0")))


@internal_method("rpc.scheduled_jobs")
def scheduled_jobs(params: Any) -> DeclaredJobs:
    """``rpc.scheduled_jobs``: the jobs declared in the imported methods package (no params).

    Returns:
        ``{"jobs": [spec, ...], "errors": [{"id", "message"}, ...]}`` (see
        :func:`catalog.declared_jobs.collect_declared_jobs`).
    """
    return collect_declared_jobs(imported_method_modules())
