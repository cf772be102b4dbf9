"""Example: the default database through ``kit.db`` (dataset upsert/query, SQLAlchemy query).

The database is ``SBUSR_DATABASE_URL`` (a SQLite file under ./data when unset); the
table ``demo_items`` is created on the first upsert. The toolkit is imported inside
the functions to keep worker start fast (see ``demo_http``).
"""

from typing import Any

TABLE = "demo_items"


def upsert_item(name: str, value: Any) -> dict[str, Any]:
    """Insert or update the item ``name`` with ``value`` (dataset); return the stored row.

    Returns:
        ``{"id": <int>, "name": <str>, "value": <value>}``.
    """
    from kit.db import get_dataset

    table = get_dataset()[TABLE]
    table.upsert({"name": name, "value": value}, ["name"])
    row = table.find_one(name=name)
    return {} if row is None else dict(row)


def get_item(name: str) -> dict[str, Any] | None:
    """Return the stored row of item ``name`` (dataset query), or ``None`` when absent."""
    from kit.db import get_dataset

    database = get_dataset()
    if TABLE not in database:
        return None
    row = database[TABLE].find_one(name=name)
    return None if row is None else dict(row)


def count_items() -> int:
    """Return how many items are stored, with a plain SQLAlchemy query (0 before the first)."""
    import sqlalchemy as sa

    from kit.db import get_engine

    with get_engine().connect() as connection:
        if not sa.inspect(connection).has_table(TABLE):
            return 0
        return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM {TABLE}")).scalar_one())
