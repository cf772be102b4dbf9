"""``dataset`` databases for methods: ``get_dataset(url)``, one per process and URL.

A ``ReconnectingDatabase`` survives a dropped server connection (the statement is retried
once on a fresh connection) and does not leave a read's transaction open. Engine options,
the default URL and the fork rules are those of :mod:`kit.db`; this module is apart so that
``dataset`` (and the alembic and mako it pulls in) is imported only by a process that uses it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dataset
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from kit._process_cache import ProcessCache
from kit.config import default_database_url
from kit.db import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_RECYCLE_S,
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT_S,
    _create_sqlite_folder,
    _engine_options,
)
from wire.redact import cache_key_for_url, redact_url

__all__ = ["ReconnectingDatabase", "close_all", "get_dataset"]

logger = logging.getLogger(__name__)


def _dispose_inherited_dataset(database: dataset.Database) -> object:
    """In a fork's child: drop the parent's per-thread connections without closing them."""
    inherited = (database.connections, database.engine and database.engine.pool)
    database.connections = {}
    if database.engine is not None:
        database.engine.dispose(close=False)
    return inherited


class _DatasetConnection(sa.Connection):
    """The per-thread connection of a ``ReconnectingDatabase``.

    Outside an explicit ``dataset`` transaction (``with db:`` / ``db.begin()``) it

    - re-runs a statement once on a fresh connection when the server connection
      was lost (inside a transaction the error propagates: statements already run
      were lost with the connection);
    - ends the transaction a read opened (SQLAlchemy 2 begins one for every
      statement, and ``dataset`` commits only after writes): the rows are
      buffered, then the transaction is committed, so an idle worker neither
      reads from a stale snapshot (MySQL REPEATABLE READ) nor holds metadata
      locks that block ``ALTER``/``DROP`` from other processes.
    """

    def __init__(self, engine: sa.Engine, database: ReconnectingDatabase) -> None:
        super().__init__(engine)
        self._database = database

    def execute(  # one signature for the overloads of sa.Connection.execute
        self, statement: Any, parameters: Any = None, *, execution_options: Any = None
    ) -> Any:
        if self._database.in_transaction:
            return super().execute(statement, parameters, execution_options=execution_options)
        try:
            result = super().execute(statement, parameters, execution_options=execution_options)
        except sa_exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning(
                "database connection to %s was lost (%s); retrying once on a new one",
                redact_url(self._database.url),
                type(exc.orig).__name__,
            )
            self.rollback()  # ends the dead transaction; the next use reconnects
            result = super().execute(statement, parameters, execution_options=execution_options)
        context = result.context
        if not result.returns_rows or context.isinsert or context.isupdate or context.isdelete:
            return result
        buffered = result.freeze()()
        self.commit()
        return buffered


class ReconnectingDatabase(dataset.Database):
    """A ``dataset.Database`` whose statements survive a dropped server connection.

    ``dataset`` keeps one connection per thread checked out for long; the pool's
    pre-ping never sees it again, so a connection killed by the server (restart,
    ``wait_timeout``, ``KILL``) would fail the next call. Here a statement that
    fails because the connection is gone is retried once on a fresh connection,
    unless it runs inside an explicit transaction; and reads do not leave a
    transaction open (see ``_DatasetConnection``).
    """

    @property
    def executable(self) -> sa.Connection:
        """This thread's connection (created on first use)."""
        with self.lock:
            thread_id = threading.get_ident()
            if thread_id not in self.connections:
                if self.engine is None:
                    raise RuntimeError("Database is closed")
                self.connections[thread_id] = _DatasetConnection(self.engine, self)
            return self.connections[thread_id]

    def __repr__(self) -> str:
        return f"<ReconnectingDatabase({redact_url(self.url)})>"


_datasets: ProcessCache[ReconnectingDatabase] = ProcessCache(
    "dataset database", _dispose_inherited_dataset
)


def get_dataset(
    url: str | None = None,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_recycle: float = DEFAULT_POOL_RECYCLE_S,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
    engine_kwargs: dict[str, Any] | None = None,
    **dataset_options: Any,
) -> ReconnectingDatabase:
    """Return this process's ``dataset`` database for ``url``, creating it on first use.

    Args:
        url: SQLAlchemy URL, ``None`` for the default database (see ``get_engine``).
        pool_size, max_overflow, pool_recycle (s), pool_timeout (s): pool sizing,
            see ``get_engine``; ``pool_pre_ping`` is always on.
        engine_kwargs: further ``create_engine`` arguments.
        **dataset_options: passed to ``dataset.Database`` (``ensure_schema``,
            ``row_type``, ``sqlite_wal_mode``...).

    Returns:
        A ``ReconnectingDatabase`` (a ``dataset.Database``): ``db["table"].upsert(row, ["key"])``,
        ``db["table"].find(...)``, ``db.query(sql)``; ``with db:`` is a transaction.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL cannot be parsed.
    """
    url = url or default_database_url()
    pool = dict(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle,
                pool_timeout=pool_timeout, pool_pre_ping=True)  # fmt: skip
    engine_options = _engine_options(url, pool, engine_kwargs)
    key = cache_key_for_url(
        url, sorted(engine_options.items(), key=str), sorted(dataset_options.items(), key=str)
    )

    def create() -> ReconnectingDatabase:
        logger.info("opening dataset database %s", redact_url(url))
        _create_sqlite_folder(url)
        return ReconnectingDatabase(url, engine_kwargs=engine_options, **dataset_options)

    return _datasets.get_or_create(key, create)


def close_all() -> None:
    """Close every dataset database this process opened and forget them (``kit.db.dispose_all``)."""
    _datasets.clear(close=lambda database: database.close())
