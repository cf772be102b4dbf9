"""The server process does not load what only methods use (memory of an idle server).

``dataset`` pulls in alembic, mako and pygments; pydantic is the workers' (params binding).
The server imports ``kit`` for job specs and the jobs database engine only, so none of them
may be loaded by importing the server, nor by importing ``kit`` itself.

Nor what only a setting or a request needs (and the worker template holds what every worker
needs, not what one call might): redis (and the OpenTelemetry SDK that redis-py
loads when it is installed) with the bus on, watchfiles with ``--reload``, jsonschema for the
first REST body checked against a schema (a job, a flow start, a replay).
"""

from __future__ import annotations

import subprocess
import sys

from tests.support import PROJECT_DIR

HEAVY_MODULES = (
    "dataset",
    "alembic",
    "mako",
    "pydantic",
    "sqlalchemy.orm",
    "redis",
    "busclient",
    "opentelemetry",
    "watchfiles",
    "jsonschema",
)


def _loaded_after(statement: str, modules: tuple[str, ...] = HEAVY_MODULES) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``statement``."""
    loaded = f"' '.join(m for m in {modules!r} if m in sys.modules)"
    probe = f"import sys; {statement}; print({loaded})"
    output = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    return output.split()


def test_server_does_not_load_what_only_methods_use() -> None:
    assert _loaded_after("import run, server.main, server.startup_checks") == []


def test_the_bus_and_schemas_load_on_first_use() -> None:
    assert "redis" in _loaded_after("import server.bus; server.bus.Bus")
    assert "redis" not in _loaded_after("from server.bus.errors import NoLivePeer")
    check_flow = "from server.http.flow import _VALIDATOR; list(_VALIDATOR.iter_errors({}))"
    assert "jsonschema" in _loaded_after(check_flow)
    assert "jsonschema" not in _loaded_after("import kit.jobs")
    spec = {"id": "tick", "method": "greetings.greet", "interval_s": 60}
    assert "jsonschema" in _loaded_after(f"import kit.jobs; kit.jobs.validate_job({spec!r})")


def test_kit_loads_its_parts_on_first_use() -> None:
    assert _loaded_after("import kit") == []
    assert "dataset" in _loaded_after("from kit.db import get_dataset")
    assert "pydantic" in _loaded_after("from kit import params_schema")


def test_worker_template_leaves_the_openrpc_builder_to_the_first_discover() -> None:
    template = (
        "import executor.zygote; from executor.internal import load_internal_methods; "
        "load_internal_methods()"
    )
    assert _loaded_after(template, ("catalog.openrpc", "catalog.declared_jobs")) == [
        "catalog.declared_jobs"
    ]
