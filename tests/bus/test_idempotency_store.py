"""The idempotency rules over both stores, in process: Redis (real) and the memory of one
instance. The end-to-end behaviour is in tests/test_idempotency.py and test_bus_idempotency.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from server.bus.idempotent import invalid_request_reply
from server.idempotency import (
    Answer,
    Idempotency,
    IdempotencyStore,
    InvalidKey,
    KeyReused,
    MemoryIdempotencyStore,
    Record,
    RedisIdempotencyStore,
    all_run,
    fingerprint_of,
    parse_key,
)
from wire.codec import decode_strict
from wire.keys import BusKeys


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore(ttl_s=60)
        return
    client = redis.asyncio.Redis.from_url(redis_url)
    yield RedisIdempotencyStore(client, BusKeys("sbusr"))
    await client.aclose()


class Counting:
    """A call that counts its runs and answers ``answer`` once ``release`` is set."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> Answer:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        return self.answer


async def test_a_repeat_is_replayed_and_runs_once(store: IdempotencyStore) -> None:
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=5)
    call = Counting(Answer(200, b'{"result":1}'))
    first = await rules.run("k", b"body", call)
    again = await rules.run("k", b"body", call)
    assert (first.replayed, again.replayed, call.runs) == (False, True, 1)
    assert again.answer == Answer(200, b'{"result":1}')


async def test_another_body_raises_key_reused_even_while_the_first_runs(
    store: IdempotencyStore,
) -> None:
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=5)
    call = Counting(Answer(200, b"{}"))
    call.release.clear()
    running = asyncio.create_task(rules.run("k", b"body", call))
    await call.started.wait()
    with pytest.raises(KeyReused):
        await rules.run("k", b"other body", call)
    call.release.set()
    await running


async def test_a_duplicate_waits_for_the_first_response(
    store: IdempotencyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.idempotency")
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=5)
    call = Counting(Answer(200, b"{}"))
    call.release.clear()
    first = asyncio.create_task(rules.run("k", b"body", call))
    await call.started.wait()
    second = asyncio.create_task(rules.run("k", b"body", call))
    async with asyncio.timeout(10):
        while "'k' is running for another request" not in caplog.text:
            await asyncio.sleep(0.01)
    assert not second.done()
    call.release.set()
    assert [(await first).replayed, (await second).replayed] == [False, True]
    assert call.runs == 1


async def test_an_answer_not_storable_frees_the_key(store: IdempotencyStore) -> None:
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=5)
    busy = Counting(Answer(503, b"busy", storable=False))
    assert (await rules.run("k", b"body", busy)).answer.status == 503
    done = Counting(Answer(200, b"{}"))
    assert (await rules.run("k", b"body", done)).replayed is False
    assert done.runs == 1


async def test_a_call_that_raises_frees_the_key(store: IdempotencyStore) -> None:
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=5)

    async def failing() -> Answer:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await rules.run("k", b"body", failing)
    assert (await rules.run("k", b"body", Counting(Answer(200, b"{}")))).replayed is False


async def test_the_redis_claim_expires_when_not_renewed(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    store = RedisIdempotencyStore(client, BusKeys("sbusr"))
    rules = Idempotency(store, ttl_s=60, claim_ttl_s=0.3)
    other_instance = RedisIdempotencyStore(client, BusKeys("sbusr"))
    assert await other_instance.claim("k", Record(fingerprint_of(b"body"), "dead"), 300) is None
    call = Counting(Answer(200, b"{}"))
    outcome = await rules.run("k", b"body", call)  # waits for the claim to expire, then runs
    assert (outcome.replayed, call.runs) == (False, 1)
    await client.aclose()


def test_keys_are_checked() -> None:
    assert parse_key('"a b"') == "a b" and parse_key(" order-1 ") == "order-1"
    for bad in ("", '""', "x" * 256, "caf\u00e9", "a\tb"):
        with pytest.raises(InvalidKey):
            parse_key(bad)


def test_responses_with_calls_not_run_are_recognised() -> None:
    assert all_run(b'{"jsonrpc":"2.0","result":1,"id":1}')
    assert all_run(b'{"jsonrpc":"2.0","error":{"code":-32000,"message":"x"},"id":1}')
    assert not all_run(b'[{"jsonrpc":"2.0","error":{"code":-32004,"message":"x"},"id":1}]')
    assert not all_run(b'{"jsonrpc":"2.0","error":{"code":-32003,"message":"x"},"id":null}')


def test_a_refused_bus_key_answers_each_request_id() -> None:
    batch = b'[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"}]'
    reply = invalid_request_reply(batch, "reused", "k")
    assert reply.body is not None
    [response] = decode_strict(reply.body)
    assert response["id"] == 1 and response["error"]["code"] == -32600
    unreadable = invalid_request_reply(b"nope", "reused", "k")
    assert unreadable.body is not None and decode_strict(unreadable.body)["id"] is None
