"""The tests flush only Redis dbs they wrote: the owner mark of tests/support.py."""

from __future__ import annotations

import pytest
import redis

from tests.support import OWNER_KEY, claim_redis_db, owner_mark


def test_a_db_with_keys_the_tests_did_not_write_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(OWNER_KEY)
    client.set("someone-elses-key", "precious")
    with pytest.raises(pytest.fail.Exception, match="holds keys the tests did not write"):
        claim_redis_db(redis_url)
    assert client.get("someone-elses-key") == b"precious"
    client.delete("someone-elses-key")
    client.close()


def test_a_db_marked_by_this_run_is_flushed_and_marked_again(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("left-by-a-test", 1)
    claim_redis_db(redis_url)
    assert client.keys() == [OWNER_KEY.encode()]
    assert client.get(OWNER_KEY) == owner_mark().encode()
    client.close()


def test_a_db_marked_by_a_live_other_run_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    host = owner_mark().rsplit(":", 1)[0]
    client.set(OWNER_KEY, f"{host}:1")  # pid 1 is alive and is not this run
    with pytest.raises(pytest.fail.Exception, match="in use by another test run"):
        claim_redis_db(redis_url)
    client.set(OWNER_KEY, owner_mark())
    client.close()
