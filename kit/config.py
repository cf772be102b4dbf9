"""Where the toolkit takes its defaults: the server's settings (settings.py), read once.

``SBUSR_DATABASE_URL``: default database for ``kit.db`` (a SQLAlchemy URL); when unset, the
SQLite file ``data/sbusr.sqlite3`` of the project (``kit.db`` creates its folder on first use).
``SBUSR_REDIS_URL``: default Redis for ``kit.redis``; when unset ``redis://127.0.0.1:6379/0``.
``SBUSR_BUS_PREFIX``: prefix of the ``kit.lock`` keys (``sbusr:lock:<name>`` by default).

The settings are read on first use, not at import, and then kept for the life of the process:
a test or a worker can set the variables before first use. Tests that change them later call
:func:`clear_cache`.
"""

from __future__ import annotations

import functools

import settings

__all__ = [
    "DEFAULT_REDIS_URL",
    "bus_prefix",
    "clear_cache",
    "default_database_url",
    "default_redis_url",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@functools.cache
def _settings() -> settings.Settings:
    return settings.load()


def clear_cache() -> None:
    """Forget the settings read so far; the next call reads the environment again (tests)."""
    _settings.cache_clear()


def default_database_url() -> str:
    """Return ``SBUSR_DATABASE_URL``, or the URL of the project's SQLite file when unset.

    Raises:
        settings.SettingsError: an ``SBUSR_*`` variable holds an invalid value.
    """
    return _settings().database_url


def default_redis_url() -> str:
    """Return ``SBUSR_REDIS_URL``, or ``redis://127.0.0.1:6379/0`` when unset.

    Raises:
        settings.SettingsError: an ``SBUSR_*`` variable holds an invalid value.
    """
    return _settings().redis_url or DEFAULT_REDIS_URL


def bus_prefix() -> str:
    """Return ``SBUSR_BUS_PREFIX``, the prefix of every Redis key of sbusr (default ``sbusr``).

    Raises:
        settings.SettingsError: an ``SBUSR_*`` variable holds an invalid value.
    """
    return _settings().bus_prefix
