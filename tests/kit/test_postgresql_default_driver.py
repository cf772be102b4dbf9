"""A plain ``postgresql://`` URL works: SQLAlchemy's default driver (psycopg 3) is installed."""

from __future__ import annotations

import sqlalchemy as sa

from kit import db as kit_db
from kit.db import get_engine


def test_a_plain_postgresql_url_uses_psycopg_3(postgres_url: str) -> None:
    plain = sa.engine.make_url(postgres_url).set(drivername="postgresql")
    assert plain.drivername == "postgresql"
    engine = get_engine(plain.render_as_string(hide_password=False))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 40 + 2")).scalar() == 42
    finally:
        kit_db.dispose_all()
