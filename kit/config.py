"""Where the toolkit takes its defaults: the server's settings (settings.py).

``SBUSR_DATABASE_URL``: default database for ``kit.db`` (a SQLAlchemy URL); when unset, the
SQLite file ``data/sbusr.sqlite3`` of the project (its folder is created on first use).
``SBUSR_REDIS_URL``: default Redis for ``kit.redis``; when unset ``redis://127.0.0.1:6379/0``.

The values are read at call time, not import time, so a test or a worker can set them before
first use.
"""

from __future__ import annotations

from pathlib import Path

import settings

__all__ = ["DEFAULT_REDIS_URL", "default_database_url", "default_redis_url"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_SQLITE_PREFIX = "sqlite:///"


def default_database_url() -> str:
    """Return the database URL of the settings (``SBUSR_DATABASE_URL`` or the SQLite default).

    Creates the folder of a SQLite file when it is missing.
    """
    url = settings.load().database_url
    if url.startswith(_SQLITE_PREFIX) and url != _SQLITE_PREFIX + ":memory:":
        Path(url[len(_SQLITE_PREFIX) :]).parent.mkdir(parents=True, exist_ok=True)
    return url


def default_redis_url() -> str:
    """Return ``SBUSR_REDIS_URL``, or ``redis://127.0.0.1:6379/0`` when unset."""
    return settings.load().redis_url or DEFAULT_REDIS_URL
