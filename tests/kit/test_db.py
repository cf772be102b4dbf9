"""kit.db against real SQLite, MariaDB and PostgreSQL: pools, sessions, dataset, fork safety."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from kit import datasets as kit_datasets
from kit import db as kit_db
from kit.datasets import get_dataset
from kit.db import get_engine, get_mysql_pool, mysql_url, session_scope
from tests.support import wait_for


def _row(table: Any, name: str) -> Any:
    """The row of ``name`` in a dataset table; fails the test when there is none."""
    row = table.find_one(name=name)
    assert row is not None, f"no row named {name!r}"
    return row


@pytest.fixture
def dropped_afterwards() -> Iterator[Callable[[str, str], None]]:
    """Collects ``(url, table)`` pairs and drops those tables after the test."""
    created: list[tuple[str, str]] = []
    yield lambda url, table: created.append((url, table))
    kit_db.dispose_all()  # no open connection may hold a lock on the table
    for url, table in created:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def test_engine_runs_a_query_on_each_database(any_database_url: str) -> None:
    engine = get_engine(any_database_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    assert engine.pool._pre_ping is True


def test_engines_are_cached_per_url_and_options(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    assert get_engine(sqlite_url) is engine
    assert get_engine(sqlite_url, pool_size=2) is not engine


def test_dataset_upsert_and_query_on_each_database(
    any_database_url: str, table_name: str, dropped_afterwards: Callable[[str, str], None]
) -> None:
    dropped_afterwards(any_database_url, table_name)
    database = get_dataset(any_database_url)
    table = database[table_name]
    table.upsert({"name": "alpha", "value": 1}, ["name"])
    table.upsert({"name": "alpha", "value": 2}, ["name"])
    table.upsert({"name": "beta", "value": 3}, ["name"])
    assert table.count() == 2
    assert _row(table, "alpha")["value"] == 2
    assert [row["name"] for row in table.find(order_by="name")] == ["alpha", "beta"]
    rows = list(database.query(f"SELECT COUNT(*) AS n FROM {table_name}"))
    assert rows[0]["n"] == 2
    assert get_dataset(any_database_url) is database


def test_dataset_reads_leave_no_transaction_open(
    any_database_url: str, table_name: str, dropped_afterwards: Callable[[str, str], None]
) -> None:
    dropped_afterwards(any_database_url, table_name)
    database = get_dataset(any_database_url)
    table = database[table_name]
    table.insert({"name": "alpha"})
    assert _row(table, "alpha")["name"] == "alpha"
    assert not database.executable.in_transaction()
    # a write by another connection is seen by the next read (no stale snapshot)
    other = sa.create_engine(any_database_url, poolclass=sa.pool.NullPool)
    with other.begin() as connection:
        connection.execute(sa.text(f"INSERT INTO {table_name} (name) VALUES ('beta')"))
    other.dispose()
    assert table.count() == 2


def test_session_scope_commits_or_rolls_back(
    any_database_url: str, table_name: str, dropped_afterwards: Callable[[str, str], None]
) -> None:
    dropped_afterwards(any_database_url, table_name)
    engine = get_engine(any_database_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {table_name} (n INTEGER)"))
    insert = sa.text(f"INSERT INTO {table_name} (n) VALUES (:n)")
    with session_scope(engine) as session:
        session.execute(insert, {"n": 1})
    with pytest.raises(RuntimeError), session_scope(any_database_url) as session:
        session.execute(insert, {"n": 2})
        raise RuntimeError("abort")
    with engine.connect() as connection:
        values = connection.execute(sa.text(f"SELECT n FROM {table_name}")).scalars().all()
    assert values == [1]


def _kill(mariadb_url: str, connection_id: int) -> None:
    """KILL a connection from another MariaDB connection and wait until it is gone."""
    admin = sa.create_engine(mariadb_url, poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f"KILL {int(connection_id)}"))

        def gone() -> bool:
            query = sa.text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :id")
            return connection.execute(query, {"id": connection_id}).scalar() == 0

        wait_for(gone, message=f"connection {connection_id} to be killed")
    admin.dispose()


def test_dataset_survives_a_killed_server_connection(
    mariadb_url: str,
    table_name: str,
    dropped_afterwards: Callable[[str, str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped_afterwards(mariadb_url, table_name)
    database = get_dataset(mariadb_url)
    table = database[table_name]
    table.upsert({"name": "alpha", "value": 1}, ["name"])
    before = next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"]
    _kill(mariadb_url, before)
    caplog.set_level(logging.WARNING, logger="kit.db")
    assert _row(table, "alpha")["value"] == 1  # the next query works
    after = next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"]
    assert after != before
    assert "retrying once" in caplog.text


def test_dataset_write_after_a_killed_connection_is_applied_once(
    mariadb_url: str, table_name: str, dropped_afterwards: Callable[[str, str], None]
) -> None:
    dropped_afterwards(mariadb_url, table_name)
    database = get_dataset(mariadb_url)
    table = database[table_name]
    table.insert({"name": "alpha"})
    _kill(mariadb_url, next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"])
    table.insert({"name": "beta"})
    assert sorted(row["name"] for row in table.all()) == ["alpha", "beta"]


def test_engine_pre_ping_replaces_a_killed_pooled_connection(mariadb_url: str) -> None:
    engine = get_engine(mariadb_url, pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        before = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
    _kill(mariadb_url, before)
    with engine.connect() as connection:
        after = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
    assert after != before


def test_pool_size_and_max_overflow_are_respected(any_database_url: str) -> None:
    engine = get_engine(any_database_url, pool_size=2, max_overflow=1, pool_timeout=0.2)
    held = [engine.connect() for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(sa_exc.TimeoutError):
        engine.connect()
    assert 0.15 <= time.monotonic() - started < 3.0
    for connection in held:
        connection.close()
    with engine.connect():
        pass


def test_get_mysql_pool_takes_the_fastflyer_argument_list(mariadb_url: str) -> None:
    engine = get_mysql_pool("root", "", "127.0.0.1", "3306", "test", 600, 4, 2)
    assert isinstance(engine.pool, sa.pool.QueuePool)
    assert engine.pool.size() == 4
    assert engine.pool._max_overflow == 2
    assert engine.pool._recycle == 600
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT DATABASE()")).scalar() == "test"
    assert get_mysql_pool(db="test", pool_size=4, max_overflow=2, recycle_rate=600) is engine


def test_mysql_url_escapes_the_password() -> None:
    url = mysql_url("u", "p@ss:/word", "h", 3307, "d", charset="utf8")
    assert sa.make_url(url).password == "p@ss:/word"
    assert sa.make_url(url).query == {"charset": "utf8"}


def test_default_database_is_the_sqlite_file_of_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import settings

    monkeypatch.delenv("SBUSR_DATABASE_URL", raising=False)
    engine = get_engine()
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    assert engine.url.get_backend_name() == "sqlite"
    assert str(engine.url) == settings.load().database_url
    assert (settings.PROJECT_DIR / "data" / "sbusr.sqlite3").exists()


def test_default_database_comes_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBUSR_DATABASE_URL", sqlite_url)
    assert str(get_engine().url) == sqlite_url
    assert get_dataset().url == sqlite_url


def test_sqlite_options_set_the_busy_timeout_and_wal_and_create_the_folder(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'wal.sqlite3'}"
    engine = get_engine(url, sqlite_busy_timeout_s=12.5, sqlite_wal_mode=True)
    with engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(sa.text("PRAGMA busy_timeout")).scalar() == 12500
    assert (tmp_path / "sub").is_dir()
    assert get_engine(url) is not engine  # other options, another engine


def test_passwords_stay_out_of_cache_keys_and_logs(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kit")
    url = sa.make_url(postgres_url).set(password="s3cr3t").render_as_string(hide_password=False)
    get_engine(url)
    get_dataset(url)
    keys = list(kit_db._engines._items) + list(kit_datasets._datasets._items)
    assert keys and all("s3cr3t" not in key for key in keys)
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in repr(get_dataset(url))


def _child_uses_engines(url: str, parent_engine: sa.Engine, queue: Any) -> None:
    try:
        child_engine = get_engine(url)
        with child_engine.connect() as connection:
            child_id = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        # An engine held from before the fork must not hand out the parent's connection.
        with parent_engine.connect() as connection:
            inherited_id = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        database = get_dataset(url)
        dataset_id = next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"]
        gc.collect()  # inherited objects must not be finalised (closed) here
        queue.put(
            {
                "same_engine": child_engine is parent_engine,
                "ids": [child_id, inherited_id, dataset_id],
            }
        )
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put({"error": repr(exc)})


def test_no_connection_is_shared_across_a_fork(mariadb_url: str) -> None:
    engine = get_engine(mariadb_url, pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        parent_id = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
    # that connection now idles in the parent's pool
    database = get_dataset(mariadb_url)
    dataset_parent_id = next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"]

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_uses_engines, args=(mariadb_url, engine, queue))
    child.start()
    report = queue.get(timeout=20)
    child.join(20)
    assert "error" not in report, report
    assert child.exitcode == 0
    assert report["same_engine"] is False
    assert not {parent_id, dataset_parent_id} & set(report["ids"])
    # the parent's connections still work after the child is gone
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar() == parent_id
    assert next(iter(database.query("SELECT CONNECTION_ID() AS id")))["id"] == dataset_parent_id


def test_dispose_all_closes_and_forgets(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    kit_db.dispose_all()
    assert get_engine(sqlite_url) is not engine
