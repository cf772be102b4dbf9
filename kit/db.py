"""Database pools for methods: SQLAlchemy 2 engines, sessions and ``dataset`` databases.

- ``get_engine(url)``: a pooled SQLAlchemy ``Engine`` (``pool_pre_ping`` on).
- ``get_mysql_pool(user, password, host, port, database, ...)``: the same for
  MySQL/MariaDB from the argument list fastflyer users know.
- ``session_scope(bind)``: a ``Session`` that commits on success, rolls back on error.
- ``get_dataset(url)``: a ``dataset.Database`` that survives a dropped server
  connection (the statement is retried once on a fresh connection); it lives in
  :mod:`kit.datasets` and is imported from there on first use.

Every object is created on first use and cached per process and per URL + options
(the cache key holds the URL with its password masked plus a hash). After a
``fork()`` the child starts with an empty cache and never touches the parent's
connections (see ``kit._process_cache``). The default URL comes from
``SBUSR_DATABASE_URL`` (``kit.config``); when unset, a SQLite file under ``./data``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kit._process_cache import ProcessCache
from kit.config import default_database_url
from wire.redact import cache_key_for_url, redact_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "dispose_all",
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


_engines: ProcessCache[sa.Engine] = ProcessCache("engine", _dispose_inherited_engine)


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
    from sqlalchemy.orm import Session  # the ORM only for the processes that use sessions

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


def dispose_all() -> None:
    """Close every engine and dataset database this process created and forget them.

    For shutdown and tests; the next ``get_*`` call creates new ones.
    """
    datasets = sys.modules.get("kit.datasets")
    if datasets is not None:  # never imported: no dataset database was opened
        datasets.close_all()
    _engines.clear(close=lambda engine: engine.dispose())


def __getattr__(name: str) -> Any:
    """``kit.db.get_dataset`` and ``kit.db.ReconnectingDatabase``, from :mod:`kit.datasets`.

    Imported on first use, so that a process that never opens a ``dataset`` database does not
    load ``dataset``, alembic and mako. Raises AttributeError for any other name.
    """
    if name in ("get_dataset", "ReconnectingDatabase"):
        from kit import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
