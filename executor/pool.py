"""The process pool: supervised workers, each running many calls at once, read by the event loop.

The whole call path reads top to bottom here::

    submit(calls)  -> waiting queue (bounded: queue_maxsize beyond the workers' free
                      capacity; a batch is refused whole when full)
    _dispatch()    -> ready workers of the current generation, least loaded first, each up to
                      its free capacity (worker_concurrency - calls running there); the calls
                      going to one worker leave in one frame
    _on_event()    -> RESULT / ERROR frames answer calls in any order, matched by call id;
                      READY marks a worker usable; BLOCKED: a call past its limit cannot stop
    _watch()       -> every ``WATCH_INTERVAL_S``: a call running past its time limit gets
                      -32001 at once and the worker is told to cancel it; a worker that
                      cannot (a plain function in a thread, or an event loop that does not
                      answer within ``CANCEL_GRACE_S``) takes no new calls, lets the calls
                      beside it finish within their own limits, and is then killed and
                      replaced; a call that waited longer than its limit in the queue gets
                      -32001 too; a call whose caller's deadline passed while it waited
                      gets -32004 (it never runs)
    withdraw()     -> the caller left: its waiting calls leave the queue unanswered, its
                      running async calls are cancelled (their answers are dropped)
    _on_exit()     -> every call a worker that died had read gets -32002 (exit code or
                      signal in data); the calls it never read (still in its input pipe)
                      go back to the head of the queue; a new worker replaces it

A call sent to a worker starts there as soon as the worker reads it (the pool never sends more
than the worker's free capacity): the only wait inside a worker is a plain call's hand-off to
a thread and a ``one_at_a_time`` method's lock.

Generations: :meth:`Pool.reload` starts the generation's template, which imports the methods
package afresh (a failed import fails the reload at once), then a full set of new workers
forked from it, and when every one of them is ready, swaps them in. The old workers finish the
calls they hold and then exit; nothing is dropped. The workers that later replace one of the
generation (recycled, crashed, timed out) are forked from the same template: they run the
generation's code, and a start costs a fork, not an import.

Recycling: a worker that served about ``max_tasks_per_child`` calls (each worker's own count,
within ±10 %, so that workers do not recycle together; the server's own ``rpc.*`` calls not
counted) gets a replacement started while it keeps serving; once the replacement is ready the
old worker takes no new calls, finishes what it runs and exits. One worker of a generation at
a time is being recycled. A worker whose resident memory grows past ``max_memory_bytes`` is
recycled the same way (checked every ``MEMORY_CHECK_INTERVAL_S``), and each worker has a hard
cap on what it may allocate (:mod:`executor.memory`).

Drain deadline: a worker that leaves the generation (reload, recycling, time-out) finishes its
calls, but for at most ``drain_timeout_s``: then the calls still running there are answered
-32001 (``data.reason`` ``"drain"``) and the worker is stopped (SIGTERM, SIGKILL to its process
group ``STOP_GRACE_S`` later). Nothing a method leaves behind (a thread that never ends, a call
that never returns) keeps an old worker alive.

Workers are forked from template processes (see :mod:`executor.process`), so a start costs
milliseconds and the user's code is imported fresh once per generation.

No helper threads: pipes and process exits (``pidfd``) are watched by the event loop.
Availability: Linux (``os.pidfd_open``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import itertools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from executor import framing
from executor.memory import apply_hard_cap, hard_cap_bytes, resident_bytes
from executor.process import Spawner, WorkerProcess
from wire.errors import (
    CallTimeout,
    DeadlinePassed,
    InvalidParams,
    JsonRpcError,
    ServerBusy,
    WorkerDied,
)

__all__ = ["Call", "CallObserver", "CallTracer", "OnDone", "Pool", "ReloadFailed"]

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.05
START_TIMEOUT_S = 60.0
#: how long a worker may take to end a cancelled async call before it counts as stuck, seconds
CANCEL_GRACE_S = 1.0
#: how long a drained worker may take to exit after its input is closed, seconds
STOP_GRACE_S = 5.0
#: while calls wait, a busy worker gets more once this many of its slots are free ...
DISPATCH_BATCH = 16
#: ... or once this long passed, seconds
DISPATCH_DELAY_S = 0.002
#: recycling happens after max_tasks_per_child calls, give or take this fraction
RECYCLE_JITTER = 0.1
#: how often the workers' resident memory is compared with max_memory_bytes, seconds
MEMORY_CHECK_INTERVAL_S = 0.5

#: ``on_done(ok, payload)``: ok True -> payload is the result as JSON bytes; ok False ->
#: payload is the error object as JSON bytes.
OnDone = Callable[[bool, bytes], None]

#: ``observer(method, ok, payload, elapsed_s, context)``: told of every answered call
#: (metrics); elapsed_s runs from submit to the answer; context is the call's (or None).
CallObserver = Callable[[str, bool, bytes, float, "dict[str, Any] | None"], None]

_STARTING, _READY, _DRAINING, _DEAD = "starting", "ready", "draining", "dead"


class ReloadFailed(Exception):
    """A new generation could not start: its code failed to import, or a worker died.

    Attributes:
        errors: ``[{"module", "type", "message"}, ...]``, one per failure.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(
                "{}: {}: {}".format(e.get("module"), e.get("type"), e.get("message"))
                for e in errors
            )
        )


class CallTracer(Protocol):
    """Told where each call is on its way, to record it as spans (``server.tracing``).

    Each method runs on the event loop's thread, synchronously, inside the pool's own code:
    it must not raise and must be quick.
    """

    def submitted(self, calls: list[Call]) -> None:
        """``calls`` were queued (from the submitter's context); may set ``call.trace``."""

    def sent(self, call: Call, worker_pid: int, generation: int) -> None:
        """``call`` leaves the queue for a worker; it may replace ``call.context`` (a copy)."""

    def answered(self, call: Call, ok: bool, payload: bytes) -> None:
        """``call`` was answered (see :data:`OnDone` for ``ok`` and ``payload``)."""


class Call:
    """One call on its way through the pool.

    Args:
        method: the JSON-RPC method name.
        params: None, a list or a dict (JSON values).
        on_done: called once with ``(ok, payload)``, see :data:`OnDone`.
        timeout_s: time limit in seconds, both for waiting in the queue (from submit) and for
            running (from the moment it is sent to a worker).
        context: small dict for the worker's log lines (e.g. ``{"request_id": ...}``) or None.
        deadline_ms: the caller's deadline, Unix epoch milliseconds, or None. A call still
            waiting at its deadline is answered -32004 and never runs; a running call's limit
            is the lesser of ``timeout_s`` and the time left. It reaches the method as
            ``context["deadline_ms"]`` (:func:`kit.deadline_ms`).

    ``trace`` belongs to the pool's :class:`CallTracer` (None while tracing is off).
    """

    __slots__ = (
        "call_id",
        "context",
        "deadline_ms",
        "deadline_s",
        "frame_end",
        "limit_s",
        "method",
        "on_done",
        "params",
        "queued",
        "sent_at",
        "submitted_at",
        "timeout_s",
        "trace",
        "worker",
    )
    _ids = itertools.count(1)

    def __init__(
        self,
        method: str,
        params: Any,
        on_done: OnDone,
        timeout_s: float,
        context: dict[str, Any] | None = None,
        deadline_ms: float | None = None,
    ) -> None:
        self.call_id = next(self._ids)
        self.method = method
        self.params = params
        self.on_done = on_done
        self.timeout_s = timeout_s
        if deadline_ms is not None:
            context = {**(context or {}), "deadline_ms": deadline_ms}
        self.context = context
        self.deadline_ms = deadline_ms
        self.deadline_s: float | None = None  # the deadline on the monotonic clock, at submit
        self.limit_s = timeout_s  # the running limit, set when sent to a worker
        self.queued = False  # in the pool's queue
        self.submitted_at = 0.0
        self.sent_at = 0.0
        #: where its frame ends in its worker's input, bytes: the worker started the call only
        #: if it read that far (see :attr:`WorkerProcess.bytes_taken`)
        self.frame_end = 0
        self.worker: _Worker | None = None  # where it runs; None while queued or once answered
        self.trace: Any = None


class _Worker:
    """The pool's view of one worker: its state, the calls it runs, its counts."""

    __slots__ = (
        "cancelling",
        "drain_timer",
        "generation",
        "process",
        "ready",
        "recycle_after",
        "recycle_reason",
        "replaces",
        "recycling",
        "running",
        "served",
        "start_s",
        "state",
        "stuck",
    )

    def __init__(
        self, generation: int, ready: asyncio.Future[list[dict[str, Any]]], recycle_after: int
    ) -> None:
        self.generation = generation
        self.ready = ready
        self.recycle_after = recycle_after
        self.state = _STARTING
        self.running: dict[int, Call] = {}
        #: call id -> monotonic time by which the worker must confirm the cancellation
        self.cancelling: dict[int, float] = {}
        self.served = 0
        self.start_s: float | None = None
        self.stuck = False  # it holds a call it cannot stop: killed once its other calls end
        self.recycling = False  # its replacement is starting
        self.recycle_reason = "recycle"  # why: "recycle" (calls served) or "memory"
        self.drain_timer: asyncio.TimerHandle | None = None  # the end of its drain deadline
        self.replaces: _Worker | None = None  # the worker this one will take over from
        self.process: WorkerProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def load(self) -> int:
        """Calls that occupy the worker: running, or cancelled and not yet confirmed gone."""
        return len(self.running) + len(self.cancelling)


def _unique(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``errors`` without repeats (the workers of a generation report the same ones), in order."""
    return list({json.dumps(e, sort_keys=True): e for e in errors}.values())


def _first(pair: tuple[int, _Worker]) -> int:
    return pair[0]


def _shares(loads: list[int], capacity: int, count: int) -> list[int]:
    """Spread ``count`` calls so that the least loaded workers get them first (water-filling).

    Args:
        loads: the workers' loads, ascending, each below ``capacity``.
        capacity: most calls a worker runs at once.
        count: calls to spread; at most ``sum(capacity - load)``.

    Returns:
        How many calls each worker takes, in the order of ``loads``. Example:
        ``_shares([0, 2, 9], 10, 5)`` -> ``[4, 1, 0]`` (loads become 4, 3, 9).
    """
    workers = len(loads)
    level, active, remaining = loads[0], 1, count
    while True:
        while active < workers and loads[active] <= level:
            active += 1
        ceiling = min(loads[active], capacity) if active < workers else capacity
        room = (ceiling - level) * active
        if room >= remaining:
            per, extra = divmod(remaining, active)
            return [
                level + per + (1 if index < extra else 0) - loads[index] if index < active else 0
                for index in range(workers)
            ]
        remaining -= room
        level = ceiling


class Pool:
    """A supervised, reloadable pool of worker processes running the methods package.

    Args:
        methods_dir: folder of the ``methods`` package the workers import.
        processes: workers per generation.
        max_tasks_per_child: calls a worker serves before it is replaced (``rpc.*`` calls not
            counted; each worker draws its own count within ±10 %); 0: never.
        queue_maxsize: calls that may wait for a worker; :meth:`submit` refuses beyond it.
        debug: workers put tracebacks into ``error.data``.
        log_level: level of the workers' root logger (a :mod:`logging` number).
        worker_concurrency: most calls one worker runs at once (1: one at a time).
        use_template: fork workers from a template process (False: a new interpreter each).
        expose_errors: workers put a method's exception text into ``error.data.message``;
            False: a pointer to its log record (``SBUSR_EXPOSE_ERRORS``).
        drain_timeout_s: longest time a worker that left its generation may take to finish its
            calls, seconds; then they are answered -32001 and the worker is stopped.
        max_memory_bytes: resident memory past which a worker is recycled, bytes (a hard cap
            of :func:`executor.memory.hard_cap_bytes` on what it allocates comes with it);
            0: no limit.

    Use from the event loop's thread only.

    Attributes:
        observer: a :data:`CallObserver` told of every answered call, or None.
        tracer: a :class:`CallTracer` told of every call's queueing, sending and answer, or
            None (tracing off).
        reload_stats: ``{"ok": int, "failed": int, "seconds": float}``: reloads after the
            first start, by outcome, and their total duration in seconds.
        start_stats: ``{"count": int, "seconds": float, "last_s": float}``: worker starts
            (from the spawn to READY), their total and the last duration, seconds.
        restarts: workers replaced, by reason: ``crash``, ``timeout``, ``recycle``, ``memory``,
            ``reload``.
    """

    def __init__(
        self,
        methods_dir: Path,
        processes: int,
        max_tasks_per_child: int,
        queue_maxsize: int,
        debug: bool = False,
        log_level: int = logging.INFO,
        worker_concurrency: int = 1,
        use_template: bool = True,
        expose_errors: bool = True,
        drain_timeout_s: float = 60.0,
        max_memory_bytes: int = 0,
    ) -> None:
        self.methods_dir = Path(methods_dir)
        self.processes = processes
        self.max_tasks_per_child = max_tasks_per_child
        self.queue_maxsize = queue_maxsize
        self.debug = debug
        self.log_level = log_level
        self.worker_concurrency = max(1, worker_concurrency)
        self.use_template = use_template
        self.expose_errors = expose_errors
        self.drain_timeout_s = drain_timeout_s
        self.max_memory_bytes = max_memory_bytes
        self._memory_checked_at = 0.0
        self.generation = 0
        self.started_at = time.monotonic()
        self.restarts: collections.Counter[str] = collections.Counter()
        self._queue: collections.deque[Call] = collections.deque()
        self._deadlines: list[tuple[float, int, float, Call]] = []  # heap of running calls
        #: heap of ``(deadline_s, call_id, call)`` of queued calls whose caller gave a deadline
        self._queued_deadlines: list[tuple[float, int, Call]] = []
        self._deadlines_limit = 1024
        self._workers: list[_Worker] = []  # the current generation
        self._live: set[_Worker] = set()  # every process not yet reaped
        self._in_flight = 0
        self._closing = False
        self._dispatch_scheduled = False
        self._dispatch_timer: asyncio.TimerHandle | None = None
        self._idle: asyncio.Event | None = None
        self._exited: asyncio.Event | None = None
        self._reload_lock = asyncio.Lock()
        self._spawn_failures = 0
        self._next_spawn_at = 0.0
        self._code: dict[int, str | None] = {}  # generation -> fingerprint of its code
        self._code_warned: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spawner: Spawner | None = None
        self._watch_timer: asyncio.TimerHandle | None = None
        self.observer: CallObserver | None = None
        self.tracer: CallTracer | None = None
        self.reload_stats: dict[str, Any] = {"ok": 0, "failed": 0, "seconds": 0.0}
        self.start_stats: dict[str, Any] = {"count": 0, "seconds": 0.0, "last_s": 0.0}
        #: ``async def hook() -> None`` run after each successful reload (e.g. the scheduler's
        #: re-sync of declared jobs); see :meth:`reload`.
        self.after_reload: list[Callable[[], Awaitable[None]]] = []

    # ------------------------------------------------------------------ public
    async def start(self) -> dict[str, Any]:
        """Start the worker template and the first generation; wait until every worker
        imported the methods.

        Returns:
            ``{"generation": 1, "elapsed_ms": float}``.

        Raises:
            ReloadFailed: the methods package failed to import, or a worker died at start.
        """
        self._loop = asyncio.get_running_loop()
        self._spawner = Spawner(self._loop, self.use_template)
        await self._spawner.start()
        self._watch_timer = self._loop.call_later(WATCH_INTERVAL_S, self._watch)
        return await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Start a new generation with freshly imported code and swap it in.

        Running calls finish on the old generation; calls dispatched from the swap on go to
        the new one. Concurrent reloads run one after the other. After a successful swap,
        every coroutine function of :attr:`after_reload` is awaited in turn (one that raises
        is logged and the others still run).

        Returns:
            ``{"generation": int, "elapsed_ms": float}`` (milliseconds).

        Raises:
            ReloadFailed: the new code failed to import, or its workers could not be started
                (the old generation keeps serving).
        """
        outcome = await self._swap_generation()
        for hook in list(self.after_reload):
            try:
                await hook()
            except Exception:
                logger.exception("after-reload hook %s failed", getattr(hook, "__qualname__", hook))
        return outcome

    async def _swap_generation(self) -> dict[str, Any]:
        async with self._reload_lock:
            started = time.perf_counter()
            generation = self.generation + 1
            assert self._spawner is not None
            imported = await self._spawner.start_generation(
                generation, self.methods_dir, self.log_level, START_TIMEOUT_S
            )
            if imported:
                raise self._refuse_generation(generation, [], imported, started)
            fresh: list[_Worker] = []
            try:
                for _ in range(self.processes):
                    fresh.append(self._spawn(generation))
            except OSError as exc:  # out of processes, or a template that did not answer
                message = f"cannot start a worker: {exc or type(exc).__name__}"
                error = {"module": "methods", "type": type(exc).__name__, "message": message}
                raise self._refuse_generation(generation, fresh, [error], started) from exc
            outcomes: list[Any]
            try:
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*(worker.ready for worker in fresh), return_exceptions=True),
                    START_TIMEOUT_S,
                )
            except TimeoutError:
                message = f"workers did not start in {START_TIMEOUT_S:.0f} s"
                outcomes = [
                    ReloadFailed(
                        [{"module": "methods", "type": "TimeoutError", "message": message}]
                    )
                ]
            errors: list[dict[str, Any]] = []
            for outcome in outcomes:
                if isinstance(outcome, ReloadFailed):
                    errors.extend(outcome.errors)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    errors.extend(outcome)
            if errors:
                raise self._refuse_generation(generation, fresh, errors, started)
            old, self._workers = self._workers, fresh
            self._spawner.end_generation(self.generation)
            self.generation = generation
            for worker in old:
                self._retire(worker, reason=None)
            for worker in fresh:
                if worker.state is _DEAD:  # died right after it reported ready
                    self._replace(worker, "crash")
            if old:
                self.restarts["reload"] += len(old)
            self._schedule_dispatch()
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            self._count_reload("ok", started)
            logger.info(
                "generation %d ready: %d workers in %.1f ms", generation, len(fresh), elapsed_ms
            )
            return {"generation": generation, "elapsed_ms": round(elapsed_ms, 3)}

    def _refuse_generation(
        self,
        generation: int,
        fresh: list[_Worker],
        errors: list[dict[str, Any]],
        started: float,
    ) -> ReloadFailed:
        """Give up ``generation``: kill its ``fresh`` workers, end its template, count the
        failed reload (``started``: its ``time.perf_counter()``); return the error to raise."""
        for worker in fresh:
            self._kill(worker)
        assert self._spawner is not None
        self._spawner.end_generation(generation)
        self._count_reload("failed", started)
        return ReloadFailed(_unique(errors))

    def _count_reload(self, outcome: str, started: float) -> None:
        """Add a reload (not the first start) to :attr:`reload_stats`."""
        first_start = self.generation == (1 if outcome == "ok" else 0)
        if not first_start:
            self.reload_stats[outcome] += 1
            self.reload_stats["seconds"] += time.perf_counter() - started

    def submit(self, calls: list[Call]) -> bool:
        """Queue calls for the workers, all or none.

        Args:
            calls: the calls; each one's ``on_done`` is called exactly once later.

        Returns:
            True when queued; False when the waiting queue has no room for all of them (beyond
            the free capacity of the ready workers, which start calls at once), or the pool is
            shutting down: then no ``on_done`` will be called and the caller answers -32003.
        """
        if self._closing:
            return False
        waiting = len(self._queue) + len(calls)
        if waiting > self.queue_maxsize and waiting > self.queue_maxsize + self.free_capacity:
            return False
        now = time.monotonic()
        clock_offset_s = now - time.time()
        queued_deadlines = self._queued_deadlines
        for call in calls:
            call.submitted_at = now
            call.queued = True
            if call.deadline_ms is not None:
                call.deadline_s = call.deadline_ms / 1000.0 + clock_offset_s
                heapq.heappush(queued_deadlines, (call.deadline_s, call.call_id, call))
        if self.tracer is not None:
            self.tracer.submitted(calls)
        self._queue.extend(calls)
        if len(queued_deadlines) > max(1024, 4 * len(self._queue)):
            self._compact_queued_deadlines()
        self._in_flight += len(calls)
        self._dispatch()  # at once: each call's time starts when it arrives, not with a crowd
        return True

    async def run(
        self,
        method: str,
        params: Any = None,
        timeout_s: float = 30.0,
        context: dict[str, Any] | None = None,
    ) -> tuple[bool, bytes]:
        """Run one call and wait for its answer (for the server's own use: jobs, rpc.*).

        Args:
            method: a method name; ``rpc.*`` names reach the worker-side internal methods.
            params: None, a list or a dict.
            timeout_s: time limit, seconds.
            context: facts for the worker's log lines.

        Returns:
            ``(True, result JSON bytes)`` or ``(False, error object JSON bytes)``.

        Raises:
            ServerBusy: the waiting queue is full.
        """
        answer: asyncio.Future[tuple[bool, bytes]] = asyncio.get_running_loop().create_future()

        def on_done(ok: bool, payload: bytes) -> None:
            if not answer.done():
                answer.set_result((ok, payload))

        if not self.submit([Call(method, params, on_done, timeout_s, context)]):
            raise ServerBusy(data={"queue_maxsize": self.queue_maxsize})
        return await answer

    def withdraw(self, calls: list[Call]) -> int:
        """The caller of ``calls`` left (e.g. its HTTP client disconnected): drop what it waits for.

        A call still waiting in the queue leaves it and is never run nor answered (its
        ``on_done`` is not called). A running call's answer is dropped; the worker is asked to
        cancel it when it is an ``async def`` method (``CancelledError`` in the method), while a
        plain function in a thread runs to its end (within its time limit). Calls already
        answered are left alone.

        Args:
            calls: calls submitted earlier, in any state.

        Returns:
            How many calls were withdrawn before they started.
        """
        waiting = [call for call in calls if call.queued]
        if waiting:
            for call in waiting:
                call.queued = False
            self._keep_queued()
            self._in_flight -= len(waiting)
            self._settle()
        running: dict[_Worker, list[int]] = {}
        for call in calls:
            worker = call.worker
            if worker is not None:
                call.on_done = _drop_answer
                running.setdefault(worker, []).append(call.call_id)
        for worker, call_ids in running.items():
            if worker.state is not _DEAD:
                worker.process.send(framing.pack_withdraw(call_ids))
        if waiting or running:
            logger.info(
                "caller left: %d waiting calls withdrawn, %d running calls withdrawn",
                len(waiting),
                sum(len(call_ids) for call_ids in running.values()),
            )
        return len(waiting)

    def _keep_queued(self) -> None:
        """Take the calls no longer marked ``queued`` out of the queue (order kept)."""
        queue = self._queue
        remaining = [call for call in queue if call.queued]
        queue.clear()
        queue.extend(remaining)

    def _compact_queued_deadlines(self) -> None:
        """Drop the deadlines of calls that left the queue (the heap keeps them until due)."""
        self._queued_deadlines = [
            (call.deadline_s, call.call_id, call)
            for call in self._queue
            if call.deadline_s is not None
        ]
        heapq.heapify(self._queued_deadlines)

    @property
    def in_flight(self) -> int:
        """Calls submitted and not yet answered (waiting or running)."""
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        """Calls waiting for a worker (in the pool's queue; none wait inside a worker)."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """Most calls the current generation runs at once: processes x worker_concurrency."""
        return self.processes * self.worker_concurrency

    @property
    def free_capacity(self) -> int:
        """Calls the ready workers of the current generation could start now."""
        concurrency = self.worker_concurrency
        return sum(concurrency - w.load for w in self._workers if w.state is _READY)

    @property
    def calls_running(self) -> int:
        """Calls sent to workers (of every generation) and not answered yet."""
        return sum(len(w.running) for w in self._live)

    def status(self) -> dict[str, Any]:
        """Describe the pool for /sys/status.

        Returns:
            ``{"generation", "uptime_s", "queue_depth", "queue_maxsize", "in_flight",
            "calls_running", "worker_concurrency", "restarts": {reason: count},
            "worker_starts": {"count", "seconds", "last_s"}, "workers": [{"pid",
            "generation", "state", "busy", "running", "capacity", "cancelling",
            "calls_served", "queued", "start_s"}]}``; ``queued`` is always 0 (calls wait in
            the pool's queue, never inside a worker); ``start_s`` is how long the worker took
            to start (seconds; null while starting).
        """
        workers = sorted(self._live, key=lambda w: (w.generation, w.pid))
        return {
            "generation": self.generation,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "queue_depth": len(self._queue),
            "queue_maxsize": self.queue_maxsize,
            "in_flight": self._in_flight,
            "calls_running": self.calls_running,
            "worker_concurrency": self.worker_concurrency,
            "restarts": dict(self.restarts),
            "worker_starts": {
                "count": self.start_stats["count"],
                "seconds": round(self.start_stats["seconds"], 6),
                "last_s": round(self.start_stats["last_s"], 6),
            },
            "workers": [
                {
                    "pid": w.pid,
                    "generation": w.generation,
                    "state": w.state,
                    "busy": bool(w.running),
                    "running": len(w.running),
                    "capacity": self.worker_concurrency,
                    "cancelling": len(w.cancelling),
                    "calls_served": w.served,
                    "queued": 0,
                    "start_s": None if w.start_s is None else round(w.start_s, 6),
                }
                for w in workers
            ],
        }

    async def shutdown(self, grace_s: float) -> None:
        """Stop: refuse new calls, let running ones finish (up to ``grace_s`` s), stop workers.

        Calls still unanswered at the deadline are answered -32001. Workers are asked to exit
        (end of input) and killed when they have not within a few seconds.
        """
        self._closing = True
        if self._in_flight:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), grace_s)
            except TimeoutError:
                logger.warning(
                    "%d calls still running after %.1f s; answering them", self._in_flight, grace_s
                )
        for call in list(self._queue):
            self._answer(call, _shutdown_before_run())
        self._queue.clear()
        for worker in list(self._live):
            if worker.running:  # its calls outlived the grace: answer them, end the worker
                for call in list(worker.running.values()):
                    self._unlink(worker, call)
                    self._answer(
                        call,
                        CallTimeout(
                            message="the server shut down during the call",
                            data={"reason": "shutdown"},
                        ),
                    )
                self._kill(worker)
            self._retire(worker, reason=None)
        deadline = time.monotonic() + STOP_GRACE_S
        while self._live and time.monotonic() < deadline:
            self._exited = asyncio.Event()
            try:
                await asyncio.wait_for(self._exited.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        for worker in list(self._live):
            worker.process.end_now()
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        if self._spawner is not None:
            self._spawner.close()

    # ------------------------------------------------------------------ workers
    def _spawn(self, generation: int) -> _Worker:
        """Start a worker of ``generation`` (state starting). Raises: OSError."""
        assert self._loop is not None and self._spawner is not None
        recycle_after = 0
        if self.max_tasks_per_child:
            jitter = random.uniform(-RECYCLE_JITTER, RECYCLE_JITTER)
            recycle_after = max(1, round(self.max_tasks_per_child * (1.0 + jitter)))
        worker = _Worker(generation, self._loop.create_future(), recycle_after)
        args = [
            str(self.methods_dir),
            "1" if self.debug else "0",
            str(self.log_level),
            str(self.worker_concurrency),
            "1" if self.expose_errors else "0",
        ]
        cap_bytes = (
            hard_cap_bytes(self.max_memory_bytes, self.worker_concurrency)
            if self.max_memory_bytes
            else 0
        )
        worker.process = WorkerProcess(
            self._spawner,
            args,
            functools.partial(self._on_event, worker),
            functools.partial(self._on_exit, worker),
            max_frame_bytes=cap_bytes,
            generation=generation,
        )
        self._live.add(worker)
        if cap_bytes:
            apply_hard_cap(worker.pid, cap_bytes)
        logger.debug("worker %d of generation %d spawned", worker.pid, generation)
        return worker

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Take ``worker`` out of the current generation and start another in its place."""
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        self.restarts[reason] += 1
        if worker.recycling:  # its replacement is already starting: it takes over
            worker.recycling = False
            for other in self._workers:
                if other.replaces is worker:
                    other.replaces = None
            return
        self._start_replacement(worker.generation)

    def _start_replacement(self, generation: int) -> None:
        """Start a worker for ``generation``, at once or, after failed starts, with a delay."""
        if self._closing or generation != self.generation:
            return
        assert self._loop is not None
        if self._spawn_failures:
            delay = min(5.0, 0.1 * 2**self._spawn_failures)
            logger.warning("workers keep failing to start; next one in %.1f s", delay)
            self._loop.call_later(delay, self._spawn_replacement, generation)
        else:
            self._spawn_replacement(generation)

    def _spawn_replacement(self, generation: int) -> None:
        if self._closing or generation != self.generation:
            return
        try:
            self._workers.append(self._spawn(generation))
        except OSError as exc:  # e.g. out of processes or file descriptors: try again later
            self._spawn_failures += 1
            logger.error("cannot start a worker: %s", exc)
            self._start_replacement(generation)

    def _start_recycling(self, worker: _Worker) -> None:
        """Start the replacement of ``worker``, which keeps serving until it is ready."""
        generation = worker.generation
        if self._closing or generation != self.generation or worker not in self._workers:
            return
        if any(w.recycling for w in self._workers):  # one at a time per generation
            return
        if time.monotonic() < self._next_spawn_at:  # replacements keep failing: wait a little
            return
        try:
            fresh = self._spawn(generation)
        except OSError as exc:
            self._spawn_failures += 1
            self._next_spawn_at = time.monotonic() + min(5.0, 0.1 * 2**self._spawn_failures)
            logger.error("cannot start a worker: %s", exc)
            return
        logger.debug(
            "worker %d served %d calls; worker %d starts to take over",
            worker.pid,
            worker.served,
            fresh.pid,
        )
        worker.recycling = True
        fresh.replaces = worker
        self._workers.append(fresh)

    def _recycle_grown(self) -> None:
        """Kill every worker whose memory is past its hard cap; start recycling a ready worker
        of the generation whose memory grew past the limit."""
        self._kill_past_hard_cap()
        for worker in self._workers:
            if worker.state is not _READY or worker.recycling:
                continue
            size = resident_bytes(worker.pid)
            if size is not None and size > self.max_memory_bytes:
                logger.warning(
                    "worker %d uses %.0f MiB, past the limit of %.0f MiB; replacing it",
                    worker.pid,
                    size / 2**20,
                    self.max_memory_bytes / 2**20,
                )
                worker.recycle_reason = "memory"
                self._start_recycling(worker)
                return

    def _kill_past_hard_cap(self) -> None:
        """Kill each live worker whose resident memory is past its hard cap (memory that
        ``RLIMIT_DATA`` does not count, such as a shared mapping ``mmap(-1, size)``): its calls
        are answered -32002 and a replacement starts."""
        cap_bytes = hard_cap_bytes(self.max_memory_bytes, self.worker_concurrency)
        for worker in list(self._live):
            if worker.state is _DEAD:
                continue
            size = resident_bytes(worker.pid)
            if size is None or size <= cap_bytes:
                continue
            logger.error(
                "worker %d uses %.0f MiB, past its hard cap of %.0f MiB; killing it",
                worker.pid,
                size / 2**20,
                cap_bytes / 2**20,
            )
            self._replace(worker, "memory")
            self._kill(worker)

    def _recycle_next(self) -> None:
        """Start recycling the next worker of the generation that served its share."""
        for worker in self._workers:
            if (
                worker.state is _READY
                and worker.recycle_after
                and worker.served >= worker.recycle_after
            ):
                self._start_recycling(worker)
                return

    def _retire(self, worker: _Worker, reason: str | None) -> None:
        """Send ``worker`` no more calls; it exits (or is killed) once its calls are answered."""
        if worker.state == _DEAD:
            return
        if reason is not None:
            self._replace(worker, reason)
        elif worker in self._workers:
            self._workers.remove(worker)
        worker.state = _DRAINING
        if worker.drain_timer is None and self._loop is not None:
            worker.drain_timer = self._loop.call_later(
                self.drain_timeout_s, self._drain_expired, worker
            )
        if not worker.running and worker.ready.done():
            self._drained(worker)

    def _drain_expired(self, worker: _Worker) -> None:
        """``worker`` is still there at its drain deadline: answer its calls, stop it."""
        worker.drain_timer = None
        if worker not in self._live or worker.state is _DEAD:
            return
        calls = list(worker.running.values())
        for call in calls:
            self._unlink(worker, call)
            self._answer(
                call,
                CallTimeout(
                    message="the call outlived its worker's drain deadline",
                    data={
                        "reason": "drain",
                        "pid": worker.pid,
                        "drain_timeout_s": self.drain_timeout_s,
                    },
                ),
            )
        logger.warning(
            "worker %d still runs %d calls %.1f s after it left its generation; stopping it",
            worker.pid,
            len(calls),
            self.drain_timeout_s,
        )
        worker.process.close_input()
        worker.process.terminate()
        worker.process.kill_later(STOP_GRACE_S)

    def _drained(self, worker: _Worker) -> None:
        """A draining worker answered its last call: end it."""
        if worker.stuck:  # a call it could not stop still runs there
            self._kill(worker)
        else:
            worker.process.close_input()
            worker.process.kill_later(STOP_GRACE_S)

    def _stop_stuck(self, worker: _Worker) -> None:
        """``worker`` cannot stop a call past its limit: no new calls; killed once its calls end."""
        if worker.stuck or worker.state is _DEAD:
            return
        worker.stuck = True
        logger.warning(
            "worker %d cannot stop a call past its time limit; it takes no new calls and is "
            "replaced once its %d other calls end",
            worker.pid,
            len(worker.running),
        )
        if worker.state is _DRAINING:
            if not worker.running:
                self._kill(worker)
        else:
            self._retire(worker, reason="timeout")

    def _kill(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.state = _DEAD

    # ------------------------------------------------------------------ the call path
    def _schedule_dispatch(self) -> None:
        """Dispatch at the end of this loop turn: calls submitted together leave together."""
        if not self._dispatch_scheduled and self._loop is not None:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self, force: bool = False) -> None:
        """Send queued calls to the ready workers of the generation, least loaded first.

        While more calls wait than fit, a worker gets calls only once :data:`DISPATCH_BATCH` of
        its slots are free, or when :data:`DISPATCH_DELAY_S` passed (``force``): a busy worker
        then receives a few frames of many calls rather than one frame per freed slot.
        """
        self._dispatch_scheduled = False
        queue = self._queue
        if not queue:
            return
        concurrency = self.worker_concurrency
        if len(queue) == 1:  # the usual case: one call, to the least loaded worker with room
            loads = [(w.load, w) for w in self._workers if w.state is _READY]
            if loads:
                load, worker = min(loads, key=_first)
                if load < concurrency:
                    self._send_calls([worker], [1])
                    return
        least_free = 1 if force else min(DISPATCH_BATCH, concurrency, len(queue))
        workers = [
            w for w in self._workers if w.state is _READY and concurrency - w.load >= least_free
        ]
        if workers:
            workers.sort(key=lambda w: w.load)
            free = sum(concurrency - w.load for w in workers)
            counts = _shares([w.load for w in workers], concurrency, min(free, len(queue)))
            self._send_calls(workers, counts)
        waiting = queue and self._dispatch_timer is None and self._loop is not None
        if waiting and any(w.state is _READY and w.load < concurrency for w in self._workers):
            assert self._loop is not None
            self._dispatch_timer = self._loop.call_later(DISPATCH_DELAY_S, self._dispatch_late)

    def _dispatch_late(self) -> None:
        self._dispatch_timer = None
        self._dispatch(force=True)

    def _send_calls(self, workers: list[_Worker], counts: list[int]) -> None:
        """Send ``counts[i]`` calls from the head of the queue to ``workers[i]``, one frame each."""
        queue = self._queue
        now = time.monotonic()
        deadlines = self._deadlines
        for worker, count in zip(workers, counts, strict=True):
            if not count:
                continue
            calls = [queue.popleft() for _ in range(count)]
            for call in calls:
                call.queued = False
            if self._queued_deadlines:
                calls = self._started_in_time(calls, now)
            if self.tracer is not None:
                for call in calls:
                    self.tracer.sent(call, worker.pid, worker.generation)
            frame = self._frame(calls)  # takes out (and answers) a call that cannot be framed
            if not calls:
                continue
            running = worker.running
            frame_end = worker.process.bytes_sent + len(frame)
            for call in calls:
                call.worker = worker
                call.sent_at = now
                call.frame_end = frame_end
                limit_s = call.timeout_s
                if call.deadline_s is not None and call.deadline_s - now < limit_s:
                    limit_s = call.deadline_s - now
                call.limit_s = limit_s
                running[call.call_id] = call
                heapq.heappush(deadlines, (now + limit_s, call.call_id, now, call))
            worker.process.send(frame)
        if len(deadlines) > self._deadlines_limit:
            self._compact_deadlines()

    def _started_in_time(self, calls: list[Call], now: float) -> list[Call]:
        """The calls whose caller's deadline has not passed; the others are answered -32004."""
        in_time = [call for call in calls if call.deadline_s is None or call.deadline_s > now]
        if len(in_time) < len(calls):
            for call in calls:
                if call.deadline_s is not None and call.deadline_s <= now:
                    self._answer_missed(call, now)
            if self._queue:
                self._schedule_dispatch()  # the room these calls would have taken
        return in_time

    def _answer_missed(self, call: Call, now: float) -> None:
        """Answer -32004: ``call`` was not started by its caller's deadline and never runs."""
        assert call.deadline_s is not None
        missed_by_ms = max(0, round((now - call.deadline_s) * 1000.0))
        logger.info(
            "call %s not started by its deadline (missed by %d ms)", call.method, missed_by_ms
        )
        self._answer(call, DeadlinePassed(data={"missed_by_ms": missed_by_ms}))

    def _frame(self, calls: list[Call]) -> bytes:
        """The calls frame of ``calls`` (:func:`executor.framing.pack_calls`).

        A call whose params cannot be framed (nested too deeply to pickle, though the JSON
        parser took them) is taken out of ``calls`` and answered -32602 at once, so it never
        costs its neighbours in the frame their answers. Only that failure packs call by call.
        """
        try:
            return framing.pack_calls([(c.call_id, c.method, c.params, c.context) for c in calls])
        except RecursionError:
            pass
        framed = []
        for call in calls:
            try:
                framing.pack_calls([(call.call_id, call.method, call.params, call.context)])
            except RecursionError:
                logger.warning("call %s refused: its params are nested too deeply", call.method)
                self._answer(call, InvalidParams(data={"message": "params nested too deeply"}))
            else:
                framed.append(call)
        calls[:] = framed
        return framing.pack_calls([(c.call_id, c.method, c.params, c.context) for c in calls])

    def _compact_deadlines(self) -> None:
        """Drop the deadlines of answered calls (the heap keeps them until they pass)."""
        self._deadlines = [
            (call.sent_at + call.limit_s, call.call_id, call.sent_at, call)
            for worker in self._live
            for call in worker.running.values()
        ]
        heapq.heapify(self._deadlines)
        self._deadlines_limit = max(1024, 4 * len(self._deadlines))

    def _on_event(self, worker: _Worker, kind: int, call_id: int, payload: bytes) -> None:
        if kind <= framing.ERROR:
            call = worker.running.pop(call_id, None)
            if call is None:  # the late answer of a call already answered (time-out)
                if worker.cancelling.pop(call_id, None) is not None:
                    self._after_answer(worker)
                return
            call.worker = None
            if not call.method.startswith("rpc."):  # the server's own calls do not age a worker
                worker.served += 1
            self._in_flight -= 1
            self._deliver(call, kind == framing.RESULT, payload)
            self._after_answer(worker)
        elif kind == framing.READY:
            self._on_ready(worker, payload)
        elif kind == framing.BLOCKED and call_id in worker.cancelling:
            self._stop_stuck(worker)

    def _after_answer(self, worker: _Worker) -> None:
        """A call left ``worker``: give it more, recycle it, or end it when drained."""
        state = worker.state
        if state is _READY:
            if self._queue:
                self._schedule_dispatch()
            if (
                worker.recycle_after
                and worker.served >= worker.recycle_after
                and not worker.recycling
            ):
                self._start_recycling(worker)
        elif state is _DRAINING and not worker.running:
            self._drained(worker)
        if not self._in_flight:
            self._settle()

    def _on_ready(self, worker: _Worker, payload: bytes) -> None:
        try:
            facts = json.loads(payload)
        except ValueError:
            facts = None
        if not isinstance(facts, dict) or not isinstance(facts.get("errors") or [], list):
            worker.process.broken("an unreadable READY frame")
            return
        errors = facts.get("errors") or []
        worker.start_s = time.monotonic() - worker.process.spawned_at
        self.start_stats["count"] += 1
        self.start_stats["seconds"] += worker.start_s
        self.start_stats["last_s"] = worker.start_s
        if not worker.ready.done():
            worker.ready.set_result(errors)
        replacement = worker.generation == self.generation and worker in self._workers
        if replacement:
            # a worker started after its generation was loaded (crash, time-out, recycling) is
            # a fork of the generation's template; only when that template is gone does it
            # import the code on disk now: say so when it is not the generation's code
            loaded = self._code.setdefault(worker.generation, facts.get("code"))
            for error in errors:
                logger.error(
                    "worker %d cannot import %s: %s: %s",
                    worker.pid,
                    error["module"],
                    error["type"],
                    error["message"],
                )
            if any(error["module"] == "methods" for error in errors):
                logger.error(
                    "worker %d cannot serve: the methods package on disk does not import; fix "
                    "it (generation %d keeps its other workers)",
                    worker.pid,
                    worker.generation,
                )
                self._spawn_failures += 1
                self._next_spawn_at = time.monotonic() + min(5.0, 0.1 * 2**self._spawn_failures)
                self._kill(worker)
                return
            if facts.get("code") != loaded and worker.generation not in self._code_warned:
                self._code_warned.add(worker.generation)
                logger.warning(
                    "the methods on disk changed since generation %d was loaded; new workers "
                    "run the new code: GET /sys/reset to load it everywhere",
                    worker.generation,
                )
        else:
            self._code.setdefault(worker.generation, facts.get("code"))
        if worker.state is _STARTING:
            worker.state = _READY
        self._spawn_failures = 0
        self._next_spawn_at = 0.0
        if worker.state is _DRAINING:
            self._drained(worker)
            return
        old = worker.replaces
        if old is not None:  # recycling: the old worker stops taking calls now
            worker.replaces = None
            old.recycling = False
            if old in self._workers:
                self.restarts[old.recycle_reason] += 1
                self._retire(old, reason=None)
            self._recycle_next()
        self._schedule_dispatch()

    def _on_exit(self, worker: _Worker, facts: dict[str, Any]) -> None:
        """The worker process ended: answer what ran there -32002, replace the worker."""
        if worker not in self._live:
            return
        killed = worker.state is _DEAD  # the pool killed it (e.g. a refused generation)
        expected = worker.state is _DRAINING or worker.stuck or self._closing or killed
        was_ready = worker.ready.done()
        worker.state = _DEAD  # from here on, nothing is dispatched to it
        self._live.discard(worker)
        if worker.drain_timer is not None:
            worker.drain_timer.cancel()
            worker.drain_timer = None
        if not worker.ready.done():
            worker.ready.set_exception(
                ReloadFailed(
                    [
                        {
                            "module": "methods",
                            "type": "WorkerDied",
                            "message": f"worker exited during start: {json.dumps(facts)}",
                        }
                    ]
                )
            )
            worker.ready.exception()  # retrieved: a failed start is reported by reload()
        calls = list(worker.running.values())
        worker.cancelling.clear()
        for call in calls:
            self._unlink(worker, call)
        calls = self._run_elsewhere(worker, calls)
        for call in calls:
            self._answer(call, WorkerDied(data=facts))
        if calls:
            logger.error(
                "worker %d died during %d calls (%s): %s",
                worker.pid,
                len(calls),
                ", ".join(sorted({call.method for call in calls})),
                facts,
            )
        elif not expected:
            logger.error("worker %d died: %s", worker.pid, facts)
        elif killed:
            logger.info(
                "worker %d of generation %d stopped by the pool: %s",
                worker.pid,
                worker.generation,
                facts,
            )
        if not was_ready:
            self._spawn_failures += 1
        old = worker.replaces
        if old is not None:  # a recycling replacement that did not make it: the old one serves
            worker.replaces = None
            old.recycling = False
            self._next_spawn_at = time.monotonic() + min(5.0, 0.1 * 2**self._spawn_failures)
            if worker in self._workers:
                self._workers.remove(worker)
        elif worker in self._workers:
            self._replace(worker, "crash")
        self._settle()
        if self._exited is not None:
            self._exited.set()
        self._schedule_dispatch()

    def _run_elsewhere(self, worker: _Worker, calls: list[Call]) -> list[Call]:
        """Queue again, first in line, the calls of ended ``worker`` that it never read.

        A call whose frame the worker did not read to its end never started, so it runs on
        another worker, with its running limit counted again from when it is sent. It is
        answered -32001 instead when it has already waited longer than its time limit since
        it was submitted (``reason: "queued"``), or the server is shutting down with no worker
        left to run it (``reason: "shutdown"``). Returns the calls that get -32002: those the
        worker read (they started), and withdrawn ones (their answer goes nowhere).
        """
        taken = worker.process.bytes_taken
        if taken is None:
            return calls
        unread = [c for c in calls if c.frame_end > taken and c.on_done is not _drop_answer]
        if not unread:
            return calls
        started = [c for c in calls if c.frame_end <= taken or c.on_done is _drop_answer]
        now = time.monotonic()
        no_worker_left = self._closing and not any(w.state is _READY for w in self._workers)
        again = []
        for call in unread:
            waited_s = now - call.submitted_at
            if no_worker_left:
                self._answer(call, _shutdown_before_run())
            elif waited_s > call.timeout_s:
                self._answer(call, _waited_too_long(waited_s))
            else:
                again.append(call)
        for call in again:
            call.queued = True
            if call.deadline_s is not None:
                heapq.heappush(self._queued_deadlines, (call.deadline_s, call.call_id, call))
        self._queue.extendleft(reversed(again))
        logger.warning(
            "worker %d ended before it read %d calls; %d run on another worker",
            worker.pid,
            len(unread),
            len(again),
        )
        return started

    def _unlink(self, worker: _Worker, call: Call) -> None:
        del worker.running[call.call_id]
        call.worker = None

    def _watch(self) -> None:
        now = time.monotonic()
        try:
            deadlines = self._deadlines
            while deadlines and deadlines[0][0] <= now:
                _, _, sent_at, call = heapq.heappop(deadlines)
                worker = call.worker
                if worker is not None and call.sent_at == sent_at:
                    self._time_out(worker, call, now)
            for worker in list(self._live):
                if worker.state is _DEAD:
                    continue
                if worker.cancelling and min(worker.cancelling.values()) < now:
                    self._stop_stuck(worker)
                elif (
                    worker.state is _STARTING and now - worker.process.spawned_at > START_TIMEOUT_S
                ):
                    logger.error(
                        "worker %d did not start in %.0f s; killing it", worker.pid, START_TIMEOUT_S
                    )
                    self._kill(worker)
            queued_deadlines = self._queued_deadlines
            if queued_deadlines and queued_deadlines[0][0] <= now:
                missed = []
                while queued_deadlines and queued_deadlines[0][0] <= now:
                    call = heapq.heappop(queued_deadlines)[2]
                    if call.queued:
                        call.queued = False
                        missed.append(call)
                if missed:
                    self._keep_queued()
                    for call in missed:
                        self._answer_missed(call, now)
            queue = self._queue
            while queue and now - queue[0].submitted_at > queue[0].timeout_s:
                call = queue.popleft()
                call.queued = False
                self._answer(call, _waited_too_long(now - call.submitted_at))
            self._recycle_next()
            if self.max_memory_bytes and now - self._memory_checked_at >= MEMORY_CHECK_INTERVAL_S:
                self._memory_checked_at = now
                self._recycle_grown()
        finally:
            if self._loop is not None and not (self._closing and not self._live):
                self._watch_timer = self._loop.call_later(WATCH_INTERVAL_S, self._watch)

    def _time_out(self, worker: _Worker, call: Call, now: float) -> None:
        """``call`` ran past its limit: answer -32001 now, ask the worker to cancel it."""
        self._unlink(worker, call)
        worker.cancelling[call.call_id] = now + CANCEL_GRACE_S
        worker.process.send(framing.pack_cancel([call.call_id]))
        elapsed_s = now - call.sent_at
        data: dict[str, Any] = {
            "timeout_s": round(call.limit_s, 3),
            "pid": worker.pid,
            "elapsed_s": round(elapsed_s, 3),
        }
        if call.limit_s < call.timeout_s:  # cut at the caller's deadline, before its own limit
            data["reason"] = "deadline"
        self._answer(call, CallTimeout(data=data))
        logger.warning(
            "call %s ran past %.3f s on worker %d; cancelling it",
            call.method,
            call.limit_s,
            worker.pid,
        )
        if worker.state is _DRAINING and not worker.running:
            self._drained(worker)

    # ------------------------------------------------------------------ answers
    def _answer(self, call: Call, error: JsonRpcError) -> None:
        call.queued = False
        self._in_flight -= 1
        self._deliver(call, False, error.to_json())
        self._settle()

    def _settle(self) -> None:
        """Wake a waiting shutdown once no call is in flight."""
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    def _deliver(self, call: Call, ok: bool, payload: bytes) -> None:
        if self.observer is not None:
            try:
                elapsed_s = time.monotonic() - call.submitted_at
                self.observer(call.method, ok, payload, elapsed_s, call.context)
            except Exception:
                logger.exception("the call observer failed on %s", call.method)
        if self.tracer is not None:
            self.tracer.answered(call, ok, payload)
        try:
            call.on_done(ok, payload)
        except Exception:
            logger.exception("answering call %s failed", call.method)


def _waited_too_long(waited_s: float) -> CallTimeout:
    """-32001 for a call that waited longer than its time limit without starting."""
    return CallTimeout(
        message="no worker became free within the time limit",
        data={"reason": "queued", "waited_s": round(waited_s, 3)},
    )


def _shutdown_before_run() -> CallTimeout:
    """-32001 for a call the server shut down before it could run."""
    return CallTimeout(
        message="the server shut down before the call ran", data={"reason": "shutdown"}
    )


def _drop_answer(ok: bool, payload: bytes) -> None:
    """The ``on_done`` of a withdrawn call: its caller left, the answer goes nowhere."""
