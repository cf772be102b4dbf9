"""The process pool: supervised workers, one pipe each way, read by the event loop.

The whole call path reads top to bottom here::

    submit(calls)  -> waiting queue (bounded: queue_maxsize; refused whole when full)
    _dispatch()    -> idle workers of the current generation; one write carries a share of
                      the queue (several calls in one frame when many wait)
    _on_readable() -> RESULT / ERROR frames answer calls in the order they were sent;
                      LOG frames go to this process's loggers; READY marks a worker usable
    _watch()       -> every ``WATCH_INTERVAL_S``: a call running past its time limit gets
                      -32001 and its worker is killed and replaced; a call that waited longer
                      than its time limit for a worker gets -32001 too
    _on_exit()     -> a worker that died answers its running call with -32002; the calls
                      queued behind it go back to the head of the queue; a new worker replaces it

Generations: :meth:`Pool.reload` starts a full set of new workers with freshly imported code,
and only when every one of them imported the methods package cleanly, swaps them in. The old
workers finish the calls they hold and then exit; nothing is dropped. Workers are also
recycled after ``max_tasks_per_child`` calls (the server's own ``rpc.*`` calls not counted),
after their current call.

No helper threads: pipes and process exits (``pidfd``) are watched by the event loop.
Availability: Linux (``os.pidfd_open``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from executor import framing
from wire.errors import CallTimeout, JsonRpcError, ServerBusy, WorkerDied

__all__ = ["Call", "CallObserver", "Pool", "ReloadFailed", "OnDone"]

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
WATCH_INTERVAL_S = 0.05
START_TIMEOUT_S = 60.0
MAX_CALLS_PER_WRITE = 128
EXIT_AFTER_EOF_S = 1.0
STOP_GRACE_S = 5.0

#: ``on_done(ok, payload)``: ok True -> payload is the result as JSON bytes; ok False ->
#: payload is the error object as JSON bytes.
OnDone = Callable[[bool, bytes], None]

#: ``observer(method, ok, payload, elapsed_s)``: told of every answered call (metrics);
#: elapsed_s runs from submit (or from the re-queue after a worker died) to the answer.
CallObserver = Callable[[str, bool, bytes, float], None]

_STARTING, _READY, _DRAINING, _DEAD = "starting", "ready", "draining", "dead"


class ReloadFailed(Exception):
    """A new generation could not start: its code failed to import, or a worker died.

    Attributes:
        errors: ``[{"module", "type", "message"}, ...]``, one per failure.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join("%s: %s: %s" % (e.get("module"), e.get("type"), e.get("message"))
                                   for e in errors))


class Call:
    """One call on its way through the pool.

    Args:
        method: the JSON-RPC method name.
        params: None, a list or a dict (JSON values).
        on_done: called once with ``(ok, payload)``, see :data:`OnDone`.
        timeout_s: time limit in seconds, both for waiting in the queue and for running.
        context: small dict for the worker's log lines (e.g. ``{"request_id": ...}``) or None.
    """

    __slots__ = ("call_id", "method", "params", "on_done", "timeout_s", "context", "submitted_at")
    _ids = itertools.count(1)

    def __init__(self, method: str, params: Any, on_done: OnDone, timeout_s: float,
                 context: dict[str, Any] | None = None) -> None:
        self.call_id = next(self._ids)
        self.method = method
        self.params = params
        self.on_done = on_done
        self.timeout_s = timeout_s
        self.context = context
        self.submitted_at = 0.0


class _Worker:
    """The server's side of one worker process."""

    __slots__ = ("process", "pid", "pidfd", "generation", "to_worker", "from_worker",
                 "read_buffer", "write_buffer", "outstanding", "served", "state", "ready",
                 "spawned_at", "head_started_at", "timed_out", "exit_timer")

    def __init__(self, process: subprocess.Popen, generation: int, to_worker: int,
                 from_worker: int, ready: asyncio.Future) -> None:
        self.process = process
        self.pid = process.pid
        self.pidfd = os.pidfd_open(process.pid)
        self.generation = generation
        self.to_worker = to_worker
        self.from_worker = from_worker
        self.read_buffer: bytes | bytearray = b""
        self.write_buffer = bytearray()
        self.outstanding: collections.deque[Call] = collections.deque()
        self.served = 0
        self.state = _STARTING
        self.ready = ready
        self.spawned_at = time.monotonic()
        self.head_started_at = 0.0
        self.timed_out = False
        self.exit_timer: asyncio.TimerHandle | None = None


def _exit_facts(process: subprocess.Popen) -> dict[str, Any]:
    code = process.returncode
    facts: dict[str, Any] = {"pid": process.pid}
    if code is None:
        facts["exitcode"] = None
    elif code < 0:
        facts["signal"] = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
    else:
        facts["exitcode"] = code
    return facts


class Pool:
    """A supervised, reloadable pool of worker processes running the methods package.

    Args:
        methods_dir: folder of the ``methods`` package the workers import.
        processes: workers per generation.
        max_tasks_per_child: calls a worker serves before it is replaced (``rpc.*`` calls not
            counted); 0: never.
        queue_maxsize: calls that may wait for a worker; :meth:`submit` refuses beyond it.
        debug: workers put tracebacks into ``error.data``.
        log_level: level of the workers' root logger (a :mod:`logging` number).

    Use from the event loop's thread only.

    Attributes:
        observer: a :data:`CallObserver` told of every answered call, or None.
        reload_stats: ``{"ok": int, "failed": int, "seconds": float}``: reloads after the
            first start, by outcome, and their total duration in seconds.
    """

    def __init__(self, methods_dir: Path, processes: int, max_tasks_per_child: int,
                 queue_maxsize: int, debug: bool = False, log_level: int = logging.INFO) -> None:
        self.methods_dir = Path(methods_dir)
        self.processes = processes
        self.max_tasks_per_child = max_tasks_per_child
        self.queue_maxsize = queue_maxsize
        self.debug = debug
        self.log_level = log_level
        self.generation = 0
        self.started_at = time.monotonic()
        self.restarts: collections.Counter[str] = collections.Counter()
        self._queue: collections.deque[Call] = collections.deque()
        self._workers: list[_Worker] = []  # the current generation
        self._live: set[_Worker] = set()   # every process not yet reaped
        self._in_flight = 0
        self._closing = False
        self._idle: asyncio.Event | None = None
        self._exited: asyncio.Event | None = None
        self._reload_lock = asyncio.Lock()
        self._spawn_failures = 0
        self._code: dict[int, str | None] = {}  # generation -> fingerprint of its code
        self._code_warned: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch_timer: asyncio.TimerHandle | None = None
        self.observer: CallObserver | None = None
        self.reload_stats: dict[str, Any] = {"ok": 0, "failed": 0, "seconds": 0.0}
        #: ``async def hook() -> None`` run after each successful reload (e.g. the scheduler's
        #: re-sync of declared jobs); see :meth:`reload`.
        self.after_reload: list[Callable[[], Awaitable[None]]] = []

    # ------------------------------------------------------------------ public
    async def start(self) -> dict[str, Any]:
        """Start the first generation and wait until every worker imported the methods.

        Returns:
            ``{"generation": 1, "elapsed_ms": float}``.

        Raises:
            ReloadFailed: the methods package failed to import, or a worker died at start.
        """
        self._loop = asyncio.get_running_loop()
        self._watch_timer = self._loop.call_later(WATCH_INTERVAL_S, self._watch)
        return await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Start a new generation with freshly imported code and swap it in.

        Running calls finish on the old generation; calls submitted from the swap on go to the
        new one. Concurrent reloads run one after the other. After a successful swap, every
        coroutine function of :attr:`after_reload` is awaited in turn (one that raises is
        logged and the others still run).

        Returns:
            ``{"generation": int, "elapsed_ms": float}`` (milliseconds).

        Raises:
            ReloadFailed: the new code failed to import (the old generation keeps serving).
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
            fresh = [self._spawn(generation) for _ in range(self.processes)]
            try:
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*(worker.ready for worker in fresh), return_exceptions=True),
                    START_TIMEOUT_S)
            except asyncio.TimeoutError:
                outcomes = [ReloadFailed([{"module": "methods", "type": "TimeoutError",
                                           "message": "workers did not start in %.0f s" % START_TIMEOUT_S}])]
            errors: list[dict[str, Any]] = []
            for outcome in outcomes:
                if isinstance(outcome, ReloadFailed):
                    errors.extend(outcome.errors)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    errors.extend(outcome)
            if errors:
                for worker in fresh:
                    self._kill(worker)
                unique = list({json.dumps(e, sort_keys=True): e for e in errors}.values())
                self._count_reload("failed", started)
                raise ReloadFailed(unique)
            old, self._workers = self._workers, fresh
            self.generation = generation
            for worker in old:
                self._retire(worker, reason=None)
            for worker in fresh:
                if worker.state is _DEAD:  # died right after it reported ready
                    self._replace(worker, "crash")
            if old:
                self.restarts["reload"] += len(old)
            self._dispatch()
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            self._count_reload("ok", started)
            logger.info("generation %d ready: %d workers in %.1f ms", generation, len(fresh), elapsed_ms)
            return {"generation": generation, "elapsed_ms": round(elapsed_ms, 3)}

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
            one call per idle worker, which starts at once), or the pool is shutting down: then
            no ``on_done`` will be called and the caller answers -32003.
        """
        if self._closing:
            return False
        if len(self._queue) + len(calls) > self.queue_maxsize:
            idle = sum(1 for w in self._workers if w.state is _READY and not w.outstanding)
            if not idle or len(self._queue) + len(calls) > self.queue_maxsize + idle:
                return False
        now = time.monotonic()
        for call in calls:
            call.submitted_at = now
        self._queue.extend(calls)
        self._in_flight += len(calls)
        self._dispatch()
        return True

    async def run(self, method: str, params: Any = None, timeout_s: float = 30.0,
                  context: dict[str, Any] | None = None) -> tuple[bool, bytes]:
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

    @property
    def in_flight(self) -> int:
        """Calls submitted and not yet answered (waiting or running)."""
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        """Calls waiting for a worker."""
        return len(self._queue)

    def status(self) -> dict[str, Any]:
        """Describe the pool for /sys/status.

        Returns:
            ``{"generation", "uptime_s", "queue_depth", "queue_maxsize", "in_flight",
            "restarts": {reason: count}, "workers": [{"pid", "generation", "state", "busy",
            "calls_served", "queued"}]}``.
        """
        workers = sorted(self._live, key=lambda w: (w.generation, w.pid))
        return {
            "generation": self.generation,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "queue_depth": len(self._queue),
            "queue_maxsize": self.queue_maxsize,
            "in_flight": self._in_flight,
            "restarts": dict(self.restarts),
            "workers": [{"pid": w.pid, "generation": w.generation, "state": w.state,
                         "busy": bool(w.outstanding), "calls_served": w.served,
                         "queued": max(0, len(w.outstanding) - 1)} for w in workers],
        }

    async def shutdown(self, grace_s: float) -> None:
        """Stop: refuse new calls, let running ones finish for up to ``grace_s`` seconds, stop workers.

        Calls still unanswered at the deadline are answered -32001. Workers are asked to exit
        (end of input) and killed when they have not within a few seconds.
        """
        self._closing = True
        if self._in_flight:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), grace_s)
            except asyncio.TimeoutError:
                logger.warning("%d calls still running after %.1f s; answering them", self._in_flight, grace_s)
        for call in list(self._queue):
            self._answer(call, CallTimeout(message="the server shut down before the call ran",
                                           data={"reason": "shutdown"}))
        self._queue.clear()
        for worker in list(self._live):
            if worker.outstanding:  # its call outlived the grace: answer it, end the worker
                while worker.outstanding:
                    self._answer(worker.outstanding.popleft(), CallTimeout(
                        message="the server shut down during the call", data={"reason": "shutdown"}))
                self._kill(worker)
            self._retire(worker, reason=None)
        deadline = time.monotonic() + STOP_GRACE_S
        while self._live and time.monotonic() < deadline:
            self._exited = asyncio.Event()
            try:
                await asyncio.wait_for(self._exited.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        for worker in list(self._live):
            self._kill(worker)
            self._on_exit(worker)
        if self._watch_timer is not None:
            self._watch_timer.cancel()

    # ------------------------------------------------------------------ workers
    def _spawn(self, generation: int) -> _Worker:
        assert self._loop is not None
        to_worker_read, to_worker = os.pipe()
        from_worker, from_worker_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "executor.worker", str(to_worker_read), str(from_worker_write),
                 str(self.methods_dir), "1" if self.debug else "0", str(self.log_level)],
                pass_fds=(to_worker_read, from_worker_write), cwd=PROJECT_DIR,
                stdin=subprocess.DEVNULL)
        finally:
            os.close(to_worker_read)
            os.close(from_worker_write)
        os.set_blocking(to_worker, False)
        os.set_blocking(from_worker, False)
        worker = _Worker(process, generation, to_worker, from_worker, self._loop.create_future())
        self._live.add(worker)
        self._loop.add_reader(from_worker, self._on_readable, worker)
        self._loop.add_reader(worker.pidfd, self._on_exit, worker)
        logger.debug("worker %d of generation %d spawned", worker.pid, generation)
        return worker

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Take ``worker`` out of the current generation and start another in its place."""
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        self.restarts[reason] += 1
        self._start_replacement(worker.generation)

    def _start_replacement(self, generation: int) -> None:
        """Start a worker for ``generation``, at once or, after failed starts, with a delay."""
        if self._closing or generation != self.generation:
            return
        if self._spawn_failures:
            delay = min(5.0, 0.1 * 2 ** self._spawn_failures)
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

    def _retire(self, worker: _Worker, reason: str | None) -> None:
        """Send ``worker`` no more calls; close its input once it has answered what it holds."""
        if worker.state == _DEAD:
            return
        if reason is not None:
            self._replace(worker, reason)
        elif worker in self._workers:
            self._workers.remove(worker)
        worker.state = _DRAINING
        if not worker.outstanding and worker.to_worker >= 0 and worker.ready.done():
            self._close_input(worker)

    def _close_input(self, worker: _Worker) -> None:
        if worker.to_worker >= 0:
            if worker.write_buffer:
                self._loop.remove_writer(worker.to_worker)
            os.close(worker.to_worker)
            worker.to_worker = -1

    def _kill(self, worker: _Worker) -> None:
        if worker.process.returncode is None:
            try:
                worker.process.kill()
            except ProcessLookupError:
                pass
        worker.state = _DEAD

    # ------------------------------------------------------------------ the call path
    def _dispatch(self) -> None:
        queue = self._queue
        if not queue:
            return
        idle = [w for w in self._workers if w.state is _READY and not w.outstanding]
        if not idle:
            return
        share = min(MAX_CALLS_PER_WRITE, -(-len(queue) // len(idle)))
        now = time.monotonic()
        for worker in idle:
            count = min(share, len(queue))
            if self.max_tasks_per_child:
                count = min(count, self.max_tasks_per_child - worker.served)
            if count <= 0:
                continue
            calls = [queue.popleft() for _ in range(count)]
            worker.outstanding.extend(calls)
            worker.head_started_at = now
            self._send(worker, framing.pack_calls(
                [(c.call_id, c.method, c.params, c.context) for c in calls]))
            if not queue:
                return

    def _send(self, worker: _Worker, data: bytes) -> None:
        if worker.write_buffer:
            worker.write_buffer += data
            return
        try:
            written = os.write(worker.to_worker, data)
        except BlockingIOError:
            written = 0
        except OSError:  # the worker is gone; its exit answers the calls
            return
        if written < len(data):
            worker.write_buffer += data[written:]
            self._loop.add_writer(worker.to_worker, self._on_writable, worker)

    def _on_writable(self, worker: _Worker) -> None:
        try:
            written = os.write(worker.to_worker, worker.write_buffer)
        except BlockingIOError:
            return
        except OSError:
            written = len(worker.write_buffer)
        del worker.write_buffer[:written]
        if not worker.write_buffer:
            self._loop.remove_writer(worker.to_worker)

    def _on_readable(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.from_worker, 1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof(worker)
            return
        self._consume(worker, data)

    def _consume(self, worker: _Worker, data: bytes) -> None:
        if worker.read_buffer:  # the rest of a frame begun in an earlier read
            buffer = worker.read_buffer
            buffer += data
        else:
            buffer = data
        header = framing.EVENT_HEADER
        size = header.size
        position, end_of_data = 0, len(buffer)
        answered = False
        while end_of_data - position >= size:
            length, kind, call_id = header.unpack_from(buffer, position)
            end = position + size + length
            if end > end_of_data:
                break
            payload = buffer[position + size:end]
            position = end
            if kind <= framing.ERROR:
                outstanding = worker.outstanding
                if not outstanding or outstanding[0].call_id != call_id:
                    continue  # the late answer of a call already answered (time-out)
                call = outstanding.popleft()
                if not call.method.startswith("rpc."):  # the server's own calls do not age a worker
                    worker.served += 1
                answered = True
                self._in_flight -= 1
                self._deliver(call, kind == framing.RESULT, payload)
            elif kind == framing.LOG:
                self._log_record(worker, payload)
            elif kind == framing.READY:
                self._on_ready(worker, payload)
        if position == len(buffer):
            worker.read_buffer = b""
        elif position or buffer is data:  # keep the incomplete frame, growing in place
            worker.read_buffer = bytearray(buffer[position:])
        if answered:
            worker.head_started_at = time.monotonic()
            if not worker.outstanding:
                self._on_worker_idle(worker)

    def _on_worker_idle(self, worker: _Worker) -> None:
        if worker.state is _DRAINING:
            self._close_input(worker)
        elif self.max_tasks_per_child and worker.served >= self.max_tasks_per_child:
            logger.debug("worker %d served %d calls; recycling it", worker.pid, worker.served)
            self._retire(worker, reason="recycle")
        self._settle()
        self._dispatch()

    def _on_ready(self, worker: _Worker, payload: bytes) -> None:
        facts = json.loads(payload)
        errors = facts.get("errors") or []
        if not worker.ready.done():
            worker.ready.set_result(errors)
        replacement = worker.generation == self.generation and worker in self._workers
        if replacement:
            # a worker started after its generation was loaded (crash, time-out, recycling)
            # imports the code on disk now: say so when it is not the generation's code
            loaded = self._code.setdefault(worker.generation, facts.get("code"))
            for error in errors:
                logger.error("worker %d cannot import %s: %s: %s", worker.pid, error["module"],
                             error["type"], error["message"])
            if any(error["module"] == "methods" for error in errors):
                logger.error("worker %d cannot serve: the methods package on disk does not "
                             "import; fix it (generation %d keeps its other workers)",
                             worker.pid, worker.generation)
                self._spawn_failures += 1
                self._kill(worker)
                return
            if facts.get("code") != loaded and worker.generation not in self._code_warned:
                self._code_warned.add(worker.generation)
                logger.warning("the methods on disk changed since generation %d was loaded; new "
                               "workers run the new code: GET /sys/reset to load it everywhere",
                               worker.generation)
        else:
            self._code.setdefault(worker.generation, facts.get("code"))
        if worker.state is _STARTING:
            worker.state = _READY
        self._spawn_failures = 0
        if worker.state is _DRAINING:
            self._close_input(worker)
        else:
            self._dispatch()

    def _on_eof(self, worker: _Worker) -> None:
        self._loop.remove_reader(worker.from_worker)
        if worker.process.poll() is None and worker.exit_timer is None:
            # a worker that closed its pipe but lives on is of no use: make sure it ends
            worker.exit_timer = self._loop.call_later(EXIT_AFTER_EOF_S, self._kill, worker)

    def _on_exit(self, worker: _Worker) -> None:
        """The worker process ended: collect its last answers, answer or requeue the rest."""
        if worker not in self._live:
            return
        expected = worker.state is _DRAINING or worker.timed_out or self._closing
        was_ready = worker.state in (_READY, _DRAINING) or worker.ready.done()
        worker.state = _DEAD  # from here on, nothing is dispatched to it
        while worker.from_worker >= 0:  # answers written before the exit are still in the pipe
            try:
                data = os.read(worker.from_worker, 1 << 18)
            except OSError:
                data = b""
            if not data:
                break
            self._consume(worker, data)
        self._live.discard(worker)
        self._loop.remove_reader(worker.pidfd)
        self._loop.remove_reader(worker.from_worker)
        os.close(worker.pidfd)
        os.close(worker.from_worker)
        worker.from_worker = -1
        self._close_input(worker)
        if worker.exit_timer is not None:
            worker.exit_timer.cancel()
        worker.process.wait()
        facts = _exit_facts(worker.process)
        if not worker.ready.done():
            worker.ready.set_exception(ReloadFailed([{
                "module": "methods", "type": "WorkerDied",
                "message": "worker exited during start: %s" % json.dumps(facts)}]))
            worker.ready.exception()  # retrieved: a failed start is reported by reload()
        if worker.outstanding and not worker.timed_out:
            head = worker.outstanding.popleft()  # the call it was running
            self._answer(head, WorkerDied(data=facts))
            logger.error("worker %d died during call %s: %s", worker.pid, head.method, facts)
        elif not expected:
            logger.error("worker %d died: %s", worker.pid, facts)
        if worker.outstanding:  # calls written behind the fatal one never started
            now = time.monotonic()
            for call in worker.outstanding:
                call.submitted_at = now
            self._queue.extendleft(reversed(worker.outstanding))
            worker.outstanding.clear()
        if not was_ready:
            self._spawn_failures += 1
        if worker in self._workers:
            self._replace(worker, "crash")
        self._settle()
        if self._exited is not None:
            self._exited.set()
        self._dispatch()

    def _watch(self) -> None:
        now = time.monotonic()
        try:
            for worker in list(self._live):
                if worker.state is _DEAD:
                    continue
                if worker.outstanding:
                    head = worker.outstanding[0]
                    if now - worker.head_started_at > head.timeout_s:
                        self._time_out(worker, head, now)
                elif worker.state is _STARTING and now - worker.spawned_at > START_TIMEOUT_S:
                    logger.error("worker %d did not start in %.0f s; killing it", worker.pid, START_TIMEOUT_S)
                    self._kill(worker)
            queue = self._queue
            while queue and now - queue[0].submitted_at > queue[0].timeout_s:
                call = queue.popleft()
                self._answer(call, CallTimeout(
                    message="no worker became free within the time limit",
                    data={"reason": "queued", "waited_s": round(now - call.submitted_at, 3)}))
        finally:
            if self._loop is not None and not (self._closing and not self._live):
                self._watch_timer = self._loop.call_later(WATCH_INTERVAL_S, self._watch)

    def _time_out(self, worker: _Worker, head: Call, now: float) -> None:
        worker.outstanding.popleft()
        worker.timed_out = True
        self._replace(worker, "timeout")
        self._kill(worker)
        self._answer(head, CallTimeout(data={
            "timeout_s": head.timeout_s, "pid": worker.pid,
            "elapsed_s": round(now - worker.head_started_at, 3)}))
        logger.warning("call %s ran past %.3f s; worker %d killed", head.method, head.timeout_s, worker.pid)

    # ------------------------------------------------------------------ answers
    def _answer(self, call: Call, error: JsonRpcError) -> None:
        self._in_flight -= 1
        self._deliver(call, False, json.dumps(error.to_object(), separators=(",", ":")).encode())
        self._settle()

    def _settle(self) -> None:
        """Wake a waiting shutdown once no call is in flight."""
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    def _deliver(self, call: Call, ok: bool, payload: bytes) -> None:
        if self.observer is not None:
            try:
                self.observer(call.method, ok, payload, time.monotonic() - call.submitted_at)
            except Exception:
                logger.exception("the call observer failed on %s", call.method)
        try:
            call.on_done(ok, payload)
        except Exception:
            logger.exception("answering call %s failed", call.method)

    @staticmethod
    def _log_record(worker: _Worker, payload: bytes) -> None:
        try:
            fields = pickle.loads(payload)
        except Exception:
            logger.warning("worker %d sent an unreadable log record", worker.pid)
            return
        record = logging.makeLogRecord(fields)
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)
