"""The server process does not load what only methods use (memory of an idle server).

``dataset`` pulls in alembic, mako and pygments; pydantic is the workers' (params binding).
The server imports ``kit`` for job specs and the jobs database engine only, so none of them
may be loaded by importing the server, nor by importing ``kit`` itself.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support import PROJECT_DIR

HEAVY_MODULES = ("dataset", "alembic", "mako", "pydantic", "sqlalchemy.orm")


def _loaded_after(statement: str) -> list[str]:
    """The modules of HEAVY_MODULES loaded by a fresh interpreter after ``statement``."""
    loaded = f"' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules)"
    probe = f"import sys; {statement}; print({loaded})"
    output = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    return output.split()


def test_server_does_not_load_what_only_methods_use() -> None:
    assert _loaded_after("import server.main") == []


def test_kit_loads_its_parts_on_first_use() -> None:
    assert _loaded_after("import kit") == []
    assert "dataset" in _loaded_after("from kit.db import get_dataset")
    assert "pydantic" in _loaded_after("from kit import params_schema")
