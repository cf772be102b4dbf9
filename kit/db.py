"""Database pools for methods: SQLAlchemy 2 engines, sessions and ``dataset`` databases.

- ``get_engine(url)``: a pooled SQLAlchemy ``Engine`` (``pool_pre_ping`` on).
- ``get_mysql_pool(user, password, host, port, database, ...)``: the same for
  MySQL/MariaDB from the argument list fastflyer users know.
- ``session_scope(bind)``: a ``Session`` that commits on success, rolls back on error.
- ``get_dataset(url)``: a ``dataset.Database`` that survives a dropped server
  connection (the statement is retried once on a fresh connection).

Every object is created on first use and cached per process and per URL + options
(the cache key holds the URL with its password masked plus a hash). After a
``fork()`` the child starts with an empty cache and never touches the parent's
connections (see ``kit._process_cache``). The default URL comes from
``SBUSR_DATABASE_URL`` (``kit.config``); when unset, a SQLite file under ``./data``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dataset
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from kit._process_cache import ProcessCache
from kit.config import default_database_url
from wire.redact import cache_key_for_url, redact_url

__all__ = [
    "ReconnectingDatabase",
    "dispose_all",
    "get_dataset",
    "get_engine",
    "get_mysql_pool",
    "mysql_url",
    "session_scope",
]

logger = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
DEFAULT_POOL_RECYCLE_S = 900
DEFAULT_POOL_TIMEOUT_S = 30.0


def _dispose_inherited_engine(engine: sa.Engine) -> object:
    """In a fork's child: give the engine a fresh pool, leave the parent's connections
    alone (SQLAlchemy's recipe for fork); returns the old pool to keep it referenced."""
    inherited_pool = engine.pool
    engine.dispose(close=False)
    return inherited_pool


def _dispose_inherited_dataset(database: dataset.Database) -> object:
    """In a fork's child: drop the parent's per-thread connections without closing them."""
    inherited = (database.connections, database.engine and database.engine.pool)
    database.connections = {}
    if database.engine is not None:
        database.engine.dispose(close=False)
    return inherited


_engines: ProcessCache[sa.Engine] = ProcessCache("engine", _dispose_inherited_engine)
_datasets: ProcessCache[ReconnectingDatabase] = ProcessCache(
    "dataset database", _dispose_inherited_dataset
)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (``sqlite:////abs/x.db``); None for others and memory."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _create_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file when it is missing (SQLite does not)."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _use_sqlite_wal(engine: sa.Engine) -> None:
    """Switch every new connection of ``engine`` to SQLite's write-ahead log (readers do not
    wait for a writer; https://sqlite.org/wal.html)."""

    @sa.event.listens_for(engine, "connect")
    def _journal_mode_wal(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def _engine_options(url: str, pool: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """``create_engine`` keyword arguments: the pool settings that fit the URL's
    backend (``pool`` holds pool_size, max_overflow, pool_recycle, pool_timeout,
    pool_pre_ping), then ``extra``."""
    options: dict[str, Any] = {
        "pool_pre_ping": pool["pool_pre_ping"],
        "pool_recycle": pool["pool_recycle"],
    }
    parsed = sa.make_url(url)
    in_memory_sqlite = parsed.get_backend_name() == "sqlite" and parsed.database in (
        None,
        "",
        ":memory:",
    )
    if not in_memory_sqlite:  # an in-memory SQLite database is one connection, no queue
        for name in ("pool_size", "max_overflow", "pool_timeout"):
            options[name] = pool[name]
    return {**options, **(extra or {})}


def get_engine(
    url: str | None = None,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_recycle: float = DEFAULT_POOL_RECYCLE_S,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
    pool_pre_ping: bool = True,
    sqlite_busy_timeout_s: float | None = None,
    sqlite_wal_mode: bool = False,
    **engine_options: Any,
) -> sa.Engine:
    """Return this process's pooled SQLAlchemy engine for ``url``, creating it on first use.

    A SQLite file's folder is created when missing.

    Args:
        url: SQLAlchemy URL, e.g. ``"mysql+pymysql://root@127.0.0.1:3306/test"``,
            ``"postgresql+psycopg2://postgres@127.0.0.1/test"``,
            ``"sqlite:////abs/path.db"``. ``None``: ``SBUSR_DATABASE_URL`` or the
            SQLite file under ``./data``.
        pool_size: connections kept open in the pool.
        max_overflow: extra connections allowed beyond ``pool_size`` under load.
        pool_recycle: seconds after which a pooled connection is replaced
            (keep below the server's idle time-out, e.g. MySQL ``wait_timeout``).
        pool_timeout: seconds a checkout waits for a free connection before
            ``sqlalchemy.exc.TimeoutError``.
        pool_pre_ping: test each connection on checkout and replace a dead one.
        sqlite_busy_timeout_s: SQLite only: seconds a statement waits for another
            connection's lock before ``database is locked`` (``None``: the driver's 5 s).
        sqlite_wal_mode: SQLite only: put the database in write-ahead-log mode.
        **engine_options: passed to ``sqlalchemy.create_engine`` (``echo``,
            ``connect_args``, ``isolation_level``...).

    Returns:
        An ``sqlalchemy.Engine``; the same object for the same URL and options in
        this process, a different one in another process. The SQLite options are
        ignored for other databases.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL cannot be parsed.
        ModuleNotFoundError: the URL's driver is not installed.
    """
    url = url or default_database_url()
    pool = dict(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle,
                pool_timeout=pool_timeout, pool_pre_ping=pool_pre_ping)  # fmt: skip
    is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
    if is_sqlite and sqlite_busy_timeout_s is not None:
        connect_args = {**engine_options.get("connect_args", {}), "timeout": sqlite_busy_timeout_s}
        engine_options = {**engine_options, "connect_args": connect_args}
    wal_mode = is_sqlite and sqlite_wal_mode
    options = _engine_options(url, pool, engine_options)
    key = cache_key_for_url(url, sorted(options.items(), key=str), wal_mode)

    def create() -> sa.Engine:
        logger.info("creating engine for %s", redact_url(url))
        _create_sqlite_folder(url)
        engine = sa.create_engine(url, **options)
        if wal_mode:
            _use_sqlite_wal(engine)
        return engine

    return _engines.get_or_create(key, create)


def mysql_url(
    user: str = "root",
    password: str = "",
    host: str = "127.0.0.1",
    port: int | str = 3306,
    database: str = "test",
    *,
    charset: str = "utf8mb4",
    driver: str = "mysql+pymysql",
) -> str:
    """Build a MySQL/MariaDB SQLAlchemy URL; special characters in the password are escaped.

    Returns:
        e.g. ``"mysql+pymysql://root:p%40ss@127.0.0.1:3306/test?charset=utf8mb4"``.
    """
    return sa.URL.create(
        driver,
        username=user,
        password=password or None,
        host=host,
        port=int(port),
        database=database,
        query={"charset": charset},
    ).render_as_string(hide_password=False)


def get_mysql_pool(
    user: str = "root",
    password: str = "",
    host: str = "127.0.0.1",
    port: int | str = 3306,
    database: str = "test",
    recycle_rate: float = DEFAULT_POOL_RECYCLE_S,
    pool_size: int = 32,
    max_overflow: int = 64,
    *,
    charset: str = "utf8mb4",
    db: str | None = None,
    **engine_options: Any,
) -> sa.Engine:
    """Return the pooled engine for a MySQL/MariaDB database (fastflyer's argument order).

    Args:
        user, password, host, port: how to log in (``port`` may be a string,
            as read from the environment).
        database: database name; ``db`` is accepted as another name for it.
        recycle_rate: seconds after which a pooled connection is replaced.
        pool_size, max_overflow: see ``get_engine``.
        charset: connection character set.
        **engine_options: see ``get_engine`` (``pool_timeout``, ``echo``...).

    Returns:
        The cached ``sqlalchemy.Engine`` (PyMySQL driver); use it with
        ``session_scope(engine)`` or ``engine.connect()``.
    """
    url = mysql_url(user, password, host, port, db or database, charset=charset)
    return get_engine(
        url,
        pool_recycle=recycle_rate,
        pool_size=pool_size,
        max_overflow=max_overflow,
        **engine_options,
    )


@contextlib.contextmanager
def session_scope(bind: sa.Engine | str | None = None, **session_options: Any) -> Iterator[Session]:
    """Yield an ORM ``Session`` that commits when the block ends, or rolls back on an error.

    Args:
        bind: an ``Engine``, a URL (passed to ``get_engine``) or ``None`` for the default database.
        **session_options: passed to ``sqlalchemy.orm.Session`` (e.g. ``expire_on_commit``).

    Yields:
        The session; it is closed (its connection returned to the pool) afterwards.

    Raises:
        Whatever the block raised, after the rollback; errors of the commit itself.
    """
    engine = bind if isinstance(bind, sa.Engine) else get_engine(bind)
    session = Session(bind=engine, **session_options)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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


def dispose_all() -> None:
    """Close every engine and dataset database this process created and forget them.

    For shutdown and tests; the next ``get_*`` call creates new ones.
    """
    _datasets.clear(close=lambda database: database.close())
    _engines.clear(close=lambda engine: engine.dispose())
