"""Where the toolkit reads its defaults from the environment (the only place it does).

``SBUSR_DATABASE_URL``: default database for ``kit.db`` (SQLAlchemy URL); when
unset, a SQLite file ``./data/sbusr.sqlite3`` (the folder is created).
``SBUSR_REDIS_URL``: default Redis for ``kit.redis``; when unset
``redis://127.0.0.1:6379/0``.

The values are read at call time, not import time, so a test or a worker can set
them before first use.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_REDIS_URL",
    "DEFAULT_SQLITE_PATH",
    "default_database_url",
    "default_redis_url",
]

DEFAULT_SQLITE_PATH = Path("data") / "sbusr.sqlite3"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def default_database_url() -> str:
    """Return ``SBUSR_DATABASE_URL``, or a SQLite URL for ``./data/sbusr.sqlite3``.

    Creates the ``./data`` folder (relative to the working directory) when the
    SQLite default is used.
    """
    url = os.environ.get("SBUSR_DATABASE_URL", "").strip()
    if url:
        return url
    path = DEFAULT_SQLITE_PATH.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def default_redis_url() -> str:
    """Return ``SBUSR_REDIS_URL``, or ``redis://127.0.0.1:6379/0`` when unset."""
    return os.environ.get("SBUSR_REDIS_URL", "").strip() or DEFAULT_REDIS_URL
