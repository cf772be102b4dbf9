"""The toolkit across forks, end to end: a methods module that connects at import.

A generation's workers are forks of one template that imported the methods package once, so
what a module opened at import exists in every worker. kit's Redis clients and SQLAlchemy
engines must then never share a connection between two processes: each worker (and each
recycled replacement) talks to Redis and PostgreSQL on connections of its own, never on the
template's.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import StartServer

METHODS = """
import json
import os
import pathlib

import sqlalchemy as sa

from kit import get_engine, get_redis

REDIS = get_redis({redis_url!r})
ENGINE = get_engine({postgres_url!r})


def _connections(redis, engine):
    with engine.connect() as connection:
        backend = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    return {{"pid": os.getpid(), "redis": redis.client_id(), "postgres": backend}}


# connections opened at import: in the template, before any worker is forked
pathlib.Path(__file__).with_name("at_import.json").write_text(
    json.dumps(_connections(REDIS, ENGINE))
)


def held():
    \"\"\"Through the client and engine the module holds since its import.\"\"\"
    return _connections(REDIS, ENGINE)


def fetched():
    \"\"\"Through kit's per-process cache.\"\"\"
    return _connections(get_redis({redis_url!r}), get_engine({postgres_url!r}))
"""


def test_workers_never_share_the_connections_opened_at_import(
    start_server: StartServer, methods_dir: Path, redis_url: str, postgres_url: str
) -> None:
    (methods_dir / "forked.py").write_text(
        METHODS.format(redis_url=redis_url, postgres_url=postgres_url)
    )
    server = start_server(env={"SBUSR_POOL_PROCESSES": "2", "SBUSR_POOL_MAXTASKSPERCHILD": "4"})
    seen = [
        server.call(f"forked.{name}")["result"] for _ in range(12) for name in ("held", "fetched")
    ]
    at_import = json.loads((methods_dir / "at_import.json").read_text())
    pids = {result["pid"] for result in seen}
    assert at_import["pid"] not in pids and len(pids) > 2  # workers forked, and recycled
    for kind in ("redis", "postgres"):
        owners: dict[int, set[int]] = {}
        for result in seen:
            owners.setdefault(result[kind], set()).add(result["pid"])
        assert at_import[kind] not in owners, kind  # the template's connection stays unused
        assert all(len(pids_of) == 1 for pids_of in owners.values()), (kind, owners)
