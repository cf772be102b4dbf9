"""Idempotency keys: a request repeated with the same key runs once (design.md, "Deadlines and
idempotency"; the IETF httpapi draft "The Idempotency-Key HTTP Header Field").

A caller names a request with a key: the HTTP header ``Idempotency-Key`` or the bus entry field
``idempotency_key``. :meth:`Idempotency.run` applies the rules, the same for both transports:

* the first request with a key **claims** it and runs; its response is **stored** under the key
  for ``SBUSR_IDEMPOTENCY_TTL_S`` seconds, with the SHA-256 **fingerprint** of the request body;
* a repeat with the same key and a byte-identical body gets the stored response without running
  (:class:`Outcome` ``replayed`` True);
* the same key with another body raises :class:`KeyReused` (HTTP 422, bus -32600), also while
  the first still runs;
* a repeat arriving while the first runs waits for its response. The claim lives
  ``claim_ttl_s`` (the call time limit plus :data:`CLAIM_MARGIN_S`) and is renewed by its owner
  every third of that while the request is queued or runs; if the owner dies (its server was
  killed), the claim expires and the next waiter claims the key and runs the request itself;
* a response whose calls were **not run** is not stored and the claim is dropped, so a retry
  runs: the pool refused the payload (-32003, HTTP 503), the caller's deadline had passed before
  it started (-32004), or the server failed (HTTP 500). Every other response is stored, error
  objects included (-32000 the method raised, -32001, -32002, -32600, -32602, ...): the method
  ran or the answer does not change on a retry.

Two stores behind one :class:`IdempotencyStore` interface:

* :class:`RedisIdempotencyStore` (the bus's Redis, ``SBUSR_REDIS_URL`` set): one key
  ``<prefix>:idempotency:<key>`` per idempotency key, seen by every instance. The claim is taken
  atomically (the CLAIM script: ``GET``, else ``SET ... PX <claim ttl>``), renewed and released
  only by its owner (compare and ``PEXPIRE``/``DEL``); the response replaces it
  (``SET ... EX <ttl>``). A waiter polls the key (:data:`POLL_FIRST_S` doubling up to
  :data:`POLL_MAX_S`).
* :class:`MemoryIdempotencyStore` (no Redis): a ``cachetools.TTLCache`` of this instance only
  (at most :data:`MEMORY_MAX_KEYS` keys; the oldest go first), so two instances without Redis
  do not see each other's keys. A waiter is woken by an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import cachetools

from settings import Settings
from wire.codec import decode_strict, encode_compact
from wire.errors import DeadlinePassed, ServerBusy
from wire.keys import BusKeys

if TYPE_CHECKING:
    import redis.asyncio

    from busclient import Script

__all__ = [
    "Answer",
    "CLAIM_MARGIN_S",
    "Idempotency",
    "IdempotencyStore",
    "InvalidKey",
    "KEY_MAX_LENGTH",
    "KeyReused",
    "MEMORY_MAX_KEYS",
    "MemoryIdempotencyStore",
    "Outcome",
    "Record",
    "RedisIdempotencyStore",
    "NOT_RUN_CODES",
    "StoreUnavailable",
    "all_run",
    "fingerprint_of",
    "memory_idempotency",
    "parse_key",
]

logger = logging.getLogger(__name__)

#: Longest idempotency key accepted, characters.
KEY_MAX_LENGTH = 255
#: Added to the call time limit to make the life of a claim, seconds.
CLAIM_MARGIN_S = 5.0
#: Most keys the in-memory store of one instance keeps; past it the oldest are dropped.
MEMORY_MAX_KEYS = 100_000
#: First and longest pause between two looks at a key another request has claimed, seconds.
POLL_FIRST_S = 0.01
POLL_MAX_S = 0.25
#: Error codes of calls that were not run (-32003 the queue was full, -32004 the caller's
#: deadline passed before the call started): a response with one of them is not stored.
NOT_RUN_CODES = frozenset((ServerBusy.code, DeadlinePassed.code))


class InvalidKey(ValueError):
    """An idempotency key that is empty, too long or not printable ASCII (HTTP 400, bus -32600)."""


class KeyReused(Exception):
    """The key was used before with another request body (HTTP 422, bus -32600).

    Attributes:
        key: the idempotency key.
    """

    def __init__(self, key: str) -> None:
        super().__init__(f"the idempotency key {key!r} was used with another request body")
        self.key = key


class StoreUnavailable(Exception):
    """The idempotency store (Redis) cannot be reached or refused a command (HTTP 503)."""


def parse_key(text: str) -> str:
    """The idempotency key of a header or field value.

    The draft makes the header a Structured Field string (``"abc"``, quotes included); a bare
    value (``abc``) is accepted too. Example: ``'"8e03978e"'`` -> ``"8e03978e"``.

    Args:
        text: the header or field value.

    Returns:
        The key: 1 to :data:`KEY_MAX_LENGTH` printable ASCII characters (space to ``~``).

    Raises:
        InvalidKey: empty, too long, or other characters (the message says which).
    """
    key = text.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not key:
        raise InvalidKey("the idempotency key is empty")
    if len(key) > KEY_MAX_LENGTH:
        raise InvalidKey(f"the idempotency key is longer than {KEY_MAX_LENGTH} characters")
    if not all(" " <= character <= "~" for character in key):
        raise InvalidKey("the idempotency key may hold printable ASCII characters only")
    return key


def fingerprint_of(body: bytes) -> str:
    """The fingerprint of a request body: its SHA-256, 64 hex digits."""
    return hashlib.sha256(body).hexdigest()


def all_run(response: bytes) -> bool:
    """Tell whether every call of a JSON-RPC response text was run (no :data:`NOT_RUN_CODES`).

    Args:
        response: one response object or a batch of them, UTF-8 JSON (``b""``: none).

    Returns:
        False when some response is an error object with a code of :data:`NOT_RUN_CODES`.
    """
    if b'"error"' not in response:
        return True
    try:
        value = decode_strict(response)
    except (ValueError, RecursionError):
        return True
    for item in value if isinstance(value, list) else [value]:
        error = item.get("error") if isinstance(item, dict) else None
        if isinstance(error, dict) and error.get("code") in NOT_RUN_CODES:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Answer:
    """A response as the transports write it.

    Attributes:
        status: the HTTP status (the bus stores 200).
        body: the response text, UTF-8 (``b""``: none, e.g. notifications, 204).
        storable: False when its calls were not run (see the module doc): not stored.
    """

    status: int
    body: bytes
    storable: bool = True


@dataclasses.dataclass(frozen=True)
class Record:
    """What a store holds under a key.

    Attributes:
        fingerprint: the fingerprint of the request body that claimed the key.
        owner: the claim's token while the request runs; None once its response is stored.
        answer: the stored response; None while the request runs.
    """

    fingerprint: str
    owner: str | None = None
    answer: Answer | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What :meth:`Idempotency.run` returns.

    Attributes:
        answer: the response.
        replayed: True when it is the stored response of an earlier request (nothing ran).
    """

    answer: Answer
    replayed: bool


class IdempotencyStore(Protocol):
    """Where claims and responses live (see the module doc for the two stores).

    Every method may raise :class:`StoreUnavailable`.
    """

    async def claim(self, key: str, record: Record, claim_ttl_ms: int) -> Record | None:
        """Claim ``key`` with ``record`` (which has an owner) unless it holds a record.

        Returns:
            None when claimed now; else the record the key holds (running or answered).
        """
        ...

    async def renew(self, key: str, owner: str, claim_ttl_ms: int) -> None:
        """Extend the claim of ``owner`` to ``claim_ttl_ms`` from now (nothing if not its own)."""
        ...

    async def save(self, key: str, owner: str, record: Record, ttl_s: int) -> None:
        """Store the answered ``record`` under ``key`` for ``ttl_s`` seconds, in place of the
        claim of ``owner``."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """Drop the claim of ``owner`` (nothing if the key holds another record)."""
        ...

    async def wait(self, key: str, timeout_s: float) -> None:
        """Return when the record of ``key`` may have changed, at the latest after
        ``timeout_s`` seconds."""
        ...


def _encode_record(record: Record) -> bytes:
    value: dict[str, Any] = {"fingerprint": record.fingerprint}
    if record.owner is not None:
        value["owner"] = record.owner
    if record.answer is not None:
        value["status"] = record.answer.status
        value["body"] = record.answer.body.decode("utf-8", errors="replace")
    return encode_compact(value)


def _decode_record(text: bytes) -> Record:
    value = decode_strict(text)
    answer = None
    if "status" in value:
        answer = Answer(int(value["status"]), str(value.get("body", "")).encode())
    return Record(str(value["fingerprint"]), value.get("owner"), answer)


#: Claim a key unless it holds a record. KEYS: the key. ARGV: the claim's record, its life (ms).
#: Returns false when claimed now, else the record the key holds.
_CLAIM_LUA = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

#: Extend or drop a claim, only when the key still holds it. KEYS: the key. ARGV: the claim's
#: record, then a life in ms (extend) or nothing (drop). Returns 1 when done, else 0.
_OWN_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])
"""


class RedisIdempotencyStore:
    """The store in Redis, shared by every instance on the same Redis (module doc).

    Args:
        client: an asyncio Redis client (bytes replies).
        keys: the bus key names (``<prefix>:idempotency:<key>``).

    redis and the bus client are imported here, by the bus: a server without
    ``SBUSR_REDIS_URL`` (the in-memory store) never loads them.
    """

    def __init__(self, client: redis.asyncio.Redis, keys: BusKeys) -> None:

        from busclient import UNUSABLE_ERRORS, Script

        self.client = client
        self.keys = keys
        self._claims: dict[tuple[str, str], bytes] = {}  # (key, owner) -> the claim's text
        self._claim_script = Script(_CLAIM_LUA)
        self._own_script = Script(_OWN_LUA)
        self._errors = UNUSABLE_ERRORS

    async def _run(self, script: Script, key: str, args: list[Any]) -> Any:
        try:
            return await script.run(self.client, [self.keys.idempotency(key)], args)
        except self._errors as exc:
            raise StoreUnavailable(f"the idempotency store cannot be used: {exc}") from exc

    async def claim(self, key: str, record: Record, claim_ttl_ms: int) -> Record | None:
        """See :meth:`IdempotencyStore.claim` (the CLAIM script)."""
        assert record.owner is not None
        text = _encode_record(record)
        current = await self._run(self._claim_script, key, [text, claim_ttl_ms])
        if not current:
            self._claims[(key, record.owner)] = text
            return None
        held = _decode_record(current)
        if held.owner == record.owner:  # our own claim, the reply of a retried command lost
            self._claims[(key, record.owner)] = text
            return None
        return held

    async def renew(self, key: str, owner: str, claim_ttl_ms: int) -> None:
        """See :meth:`IdempotencyStore.renew`."""
        text = self._claims.get((key, owner))
        if text is not None:
            await self._run(self._own_script, key, [text, claim_ttl_ms])

    async def save(self, key: str, owner: str, record: Record, ttl_s: int) -> None:
        """See :meth:`IdempotencyStore.save` (``SET <key> <record> EX <ttl_s>``)."""
        self._claims.pop((key, owner), None)
        try:
            await self.client.set(self.keys.idempotency(key), _encode_record(record), ex=ttl_s)
        except self._errors as exc:
            raise StoreUnavailable(f"the idempotency store cannot be used: {exc}") from exc

    async def release(self, key: str, owner: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        text = self._claims.pop((key, owner), None)
        if text is not None:
            await self._run(self._own_script, key, [text])

    async def wait(self, key: str, timeout_s: float) -> None:
        """See :meth:`IdempotencyStore.wait`: a pause of ``timeout_s`` (the caller polls)."""
        await asyncio.sleep(timeout_s)


class MemoryIdempotencyStore:
    """The store of one instance, in memory (module doc): no Redis, not shared.

    Args:
        ttl_s: how long a record is kept, seconds.
        max_keys: most keys kept; past it the oldest are dropped.
    """

    def __init__(self, ttl_s: int, max_keys: int = MEMORY_MAX_KEYS) -> None:
        self.records: cachetools.TTLCache[str, Record] = cachetools.TTLCache(max_keys, ttl_s)
        self._changed: dict[str, asyncio.Event] = {}

    async def claim(self, key: str, record: Record, claim_ttl_ms: int) -> Record | None:
        """See :meth:`IdempotencyStore.claim` (a claim lives as long as its owner here)."""
        held = self.records.get(key)
        if held is not None:
            return held
        self.records[key] = record
        return None

    async def renew(self, key: str, owner: str, claim_ttl_ms: int) -> None:
        """Nothing to do: the owner runs in this process."""

    async def save(self, key: str, owner: str, record: Record, ttl_s: int) -> None:
        """See :meth:`IdempotencyStore.save` (``ttl_s`` is the cache's own)."""
        self.records[key] = record
        self._wake(key)

    async def release(self, key: str, owner: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        held = self.records.get(key)
        if held is not None and held.owner == owner:
            del self.records[key]
        self._wake(key)

    async def wait(self, key: str, timeout_s: float) -> None:
        """See :meth:`IdempotencyStore.wait`: woken by :meth:`save` or :meth:`release`."""
        event = self._changed.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def _wake(self, key: str) -> None:
        event = self._changed.pop(key, None)
        if event is not None:
            event.set()


class Idempotency:
    """The rules of the module doc over one store.

    Args:
        store: where claims and responses live.
        ttl_s: how long a response is kept, seconds (``SBUSR_IDEMPOTENCY_TTL_S``).
        claim_ttl_s: life of a claim that is not renewed, seconds (the call time limit plus
            :data:`CLAIM_MARGIN_S`, see :meth:`for_settings`).
    """

    def __init__(self, store: IdempotencyStore, ttl_s: int, claim_ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.claim_ttl_ms = max(1, int(claim_ttl_s * 1000))

    @classmethod
    def for_settings(
        cls, settings_ttl_s: int, rpc_timeout_s: float, store: IdempotencyStore
    ) -> Idempotency:
        """The rules with the server's settings.

        Args:
            settings_ttl_s: ``SBUSR_IDEMPOTENCY_TTL_S``, seconds.
            rpc_timeout_s: the call time limit (``SBUSR_RPC_TIMEOUT``), seconds.
            store: where claims and responses live.
        """
        return cls(store, settings_ttl_s, rpc_timeout_s + CLAIM_MARGIN_S)

    async def run(self, key: str, body: bytes, call: Callable[[], Awaitable[Answer]]) -> Outcome:
        """Answer the request ``body`` named ``key``: run ``call`` once, or replay.

        Args:
            key: the idempotency key (already checked by :func:`parse_key`).
            body: the request body exactly as received (its fingerprint is compared).
            call: runs the request and returns its :class:`Answer`; awaited at most once.

        Returns:
            The :class:`Outcome`: ``call``'s answer, or the stored one (``replayed``).

        Raises:
            KeyReused: the key belongs to another body.
            StoreUnavailable: the store cannot be used (``call`` did not run).
        """
        fingerprint = fingerprint_of(body)
        owner = os.urandom(12).hex()
        claim = Record(fingerprint, owner)
        pause_s = POLL_FIRST_S
        while True:
            held = await self.store.claim(key, claim, self.claim_ttl_ms)
            if held is None:
                return Outcome(await self._run_claimed(key, claim, call), replayed=False)
            if held.fingerprint != fingerprint:
                raise KeyReused(key)
            if held.answer is not None:
                return Outcome(held.answer, replayed=True)
            if pause_s == POLL_FIRST_S:
                logger.info("idempotency: %r is running for another request; waiting", key)
            await self.store.wait(key, pause_s)
            pause_s = min(POLL_MAX_S, pause_s * 2)

    async def _run_claimed(
        self, key: str, claim: Record, call: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """Run ``call`` under the claim (renewed meanwhile); store or drop its answer."""
        assert claim.owner is not None
        renewal = asyncio.get_running_loop().create_task(self._renew(key, claim.owner))
        try:
            answer = await call()
        except BaseException:
            renewal.cancel()
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(key, claim.owner)
            raise
        renewal.cancel()
        if answer.storable:
            stored = Record(claim.fingerprint, answer=Answer(answer.status, answer.body))
            await self.store.save(key, claim.owner, stored, self.ttl_s)
        else:
            await self.store.release(key, claim.owner)
        return answer

    async def _renew(self, key: str, owner: str) -> None:
        """Renew the claim every third of its life until cancelled."""
        while True:
            await asyncio.sleep(self.claim_ttl_ms / 3000.0)
            try:
                await self.store.renew(key, owner, self.claim_ttl_ms)
            except StoreUnavailable as exc:
                logger.warning("idempotency: renewing the claim of %r failed: %s", key, exc)


def memory_idempotency(settings: Settings) -> Idempotency:
    """The rules over an in-memory store of this instance (the server without Redis).

    Args:
        settings: ``idempotency_ttl_s`` and ``rpc_timeout_s`` are read.
    """
    store = MemoryIdempotencyStore(settings.idempotency_ttl_s)
    return Idempotency.for_settings(settings.idempotency_ttl_s, settings.rpc_timeout_s, store)
