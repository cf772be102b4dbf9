"""A worker process: imports the methods package and runs the calls the server sends, side by side.

Started by the pool (forked from its template process, :mod:`executor.zygote`, or as
``python -m executor.worker IN_FD OUT_FD METHODS_DIR DEBUG LOG_LEVEL CONCURRENCY
EXPOSE_ERRORS``). It reads
frames from IN_FD and writes one RESULT or ERROR frame per call to OUT_FD, in the order the
calls finish (format: :mod:`executor.framing`).

Concurrency: the worker has one event loop, run by its main thread, which reads the pipe
(``loop.add_reader``). Each call starts at once: an ``async def`` method as a task on that
loop, a plain function in one of the worker's threads (at most CONCURRENCY threads, started
as needed); the server never sends more than CONCURRENCY calls at once. A method marked
:func:`kit.one_at_a_time` has its calls run one after the other (a lock per method, taken on
the loop). The call context (:data:`executor.context.call_context`, e.g. the request id) is
set per call inside its task or thread, so log records carry their own call's facts.

CANCEL frames stop calls past their time limit: a task is cancelled (``CancelledError`` in the
method; its ERROR frame then tells the server the call is gone); a call in a thread cannot be
stopped, so the worker answers BLOCKED and the server stops sending it calls. WITHDRAW frames
(the caller left) cancel tasks the same way and leave calls in threads to finish.

Log records of the process travel to the server as LOG frames, so they reach the server's
handlers at their own levels. End of input (the server closed the pipe) makes the worker exit
0 once the calls it runs are answered.

The worker's standard output is redirected to its standard error, so ``print`` in a method
cannot corrupt the pipe; SIGINT is ignored (the server decides when workers stop).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import pkgutil
import signal
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from executor import framing, params
from executor.context import ONE_AT_A_TIME_ATTRIBUTE, call_context
from executor.encoding import encode
from executor.internal import INTERNAL_METHODS, load_internal_methods
from executor.method_errors import current_call_id, error_data, log_raised, log_refused
from executor.resolve import PACKAGE, resolve
from wire.errors import CallTimeout, InternalError, JsonRpcError, MethodNotFound, MethodRaised

__all__ = ["Runner", "call_context", "import_methods", "main"]

logger = logging.getLogger(__name__)

READ_SIZE = 1 << 18
#: most bytes of log records a template's import (:func:`preload`) keeps for the server
MAX_PRELOAD_LOG_BYTES = 64 * 1024
#: a call that found no idle thread waits at most about this long for a new one, seconds
GROW_DELAY_S = 0.001


class _Channel:
    """The worker's output pipe, written by the loop and by the call threads.

    Frames are never interleaved: one sender at a time writes; frames that other threads send
    meanwhile are queued and leave with its next write (many answers, one system call).
    """

    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._writing = False

    def send(self, frame: bytes) -> None:
        """Write ``frame`` whole (now or with the current writer's next write); exit the process
        when the server is gone (broken pipe)."""
        with self._lock:
            if self._writing:
                self._pending.append(frame)
                return
            self._writing = True
        self._write(frame)

    def _write(self, data: bytes) -> None:
        """Write ``data``, then the frames queued meanwhile; then let the next sender write."""
        while True:
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self.out_fd, view)
                    view = view[written:]
            except BrokenPipeError:
                os._exit(0)
            with self._lock:
                if not self._pending:
                    self._writing = False
                    return
                frames, self._pending = self._pending, []
            data = frames[0] if len(frames) == 1 else b"".join(frames)


class _FrameSink(Protocol):
    def send(self, frame: bytes) -> None: ...


class _PipeLogHandler(logging.Handler):
    """Sends every log record to the server as a LOG frame."""

    def __init__(self, channel: _FrameSink) -> None:
        super().__init__(logging.DEBUG)
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(record.__dict__)
            fields["msg"] = record.getMessage()
            fields["args"] = None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            fields["exc_info"] = None
            fields["stack_info"] = record.stack_info
            context = call_context.get()
            if context:
                fields.update({key: value for key, value in context.items() if key not in fields})
            # data only: an extra JSON cannot carry travels as its repr()
            payload = json.dumps(fields, default=repr).encode()
            self._channel.send(framing.pack_event(framing.LOG, 0, payload))
        except Exception:
            self.handleError(record)


def _install_methods_package(methods_dir: Path) -> types.ModuleType:
    """Import the folder ``methods_dir`` as the package ``methods``, whatever its folder name."""
    init = methods_dir / "__init__.py"
    if init.exists():
        found = importlib.util.spec_from_file_location(
            PACKAGE, init, submodule_search_locations=[str(methods_dir)]
        )
        if found is None:
            raise ImportError(f"cannot import {init}")
        spec = found
    else:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(methods_dir)]
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        # None, not absent: no other "methods" on sys.path may stand in for the broken one
        sys.modules[PACKAGE] = None  # type: ignore[assignment]
        raise
    return module


def code_fingerprint(methods_dir: Path) -> str:
    """A short hash of the methods' source files (paths, sizes, modification times).

    Two workers with the same fingerprint imported the same code; the pool uses it to notice a
    worker started on code that changed on disk since its generation was loaded.
    """
    digest = hashlib.sha256()
    for path in sorted(methods_dir.rglob("*.py")):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(
            b"%s %d %d\n"
            % (str(path.relative_to(methods_dir)).encode(), stat.st_size, stat.st_mtime_ns)
        )
    return digest.hexdigest()[:16]


class _KeptLogs:
    """Stands in for the output pipe while a template imports: keeps the LOG payloads (text),
    up to ``limit`` bytes of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.payloads: list[str] = []

    def send(self, frame: bytes) -> None:
        """Keep the payload of the LOG frame ``frame`` while within the limit."""
        payload = frame[framing.EVENT_HEADER.size :]
        if len(payload) <= self.limit:
            self.limit -= len(payload)
            self.payloads.append(payload.decode())


def _route_output(sink: _FrameSink, log_level: int) -> logging.Logger:
    """Send print() to standard error (never into the pipe) and every log record at
    ``log_level`` or above to ``sink`` as a LOG frame; return the root logger."""
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(sink)]
    root.setLevel(log_level)
    return root


def preload(methods_dir: Path, log_level: int) -> dict[str, Any]:
    """Import the methods package in a template process, for the workers it forks.

    Log records of the import are kept (as their LOG payloads, at most
    :data:`MAX_PRELOAD_LOG_BYTES`) for the server, which logs them once; print() goes to
    standard error, as in a worker. The params validators of the methods' functions are built
    too (:func:`executor.params.prepare_hint_validators`): every worker forked gets them.

    Args:
        methods_dir: folder of the package.
        log_level: level of the root logger during the import (a :mod:`logging` number).

    Returns:
        ``{"errors": [...], "code": str, "logs": [str, ...]}``: ``errors`` and ``code`` as in
        a READY frame (pass them to :func:`main` as ``preloaded``), ``logs`` the payloads.
    """
    kept = _KeptLogs(MAX_PRELOAD_LOG_BYTES)
    root = _route_output(kept, log_level)
    try:
        fingerprint = code_fingerprint(methods_dir)
        errors = import_methods(methods_dir)
        if not errors:
            params.prepare_hint_validators(_public_functions())
    finally:
        root.handlers[:] = []
    return {"errors": errors, "code": fingerprint, "logs": kept.payloads}


def _public_functions() -> list[Callable[..., Any]]:
    """The functions defined in the imported methods modules, at their modules' top level,
    with public names (what resolution may reach; classes' methods are left out)."""
    functions: list[Callable[..., Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        for attribute, value in vars(module).items():
            if (
                not attribute.startswith("_")
                and inspect.isfunction(value)
                and value.__module__ == name
            ):
                functions.append(value)
    return functions


def _describe_import_error(module: str, exc: BaseException) -> dict[str, str]:
    return {"module": module, "type": type(exc).__name__, "message": str(exc)}


def import_methods(methods_dir: Path) -> list[dict[str, str]]:
    """Import the methods package and every submodule not starting with ``_``.

    Args:
        methods_dir: folder of the package.

    Returns:
        One ``{"module", "type", "message"}`` per module that failed to import; [] when all
        imported. A broken package ``__init__`` stops the walk.
    """
    try:
        package = _install_methods_package(methods_dir)
    except BaseException as exc:
        return [_describe_import_error(PACKAGE, exc)]
    errors: list[dict[str, str]] = []

    def walk(path: list[str], prefix: str) -> None:
        for info in sorted(pkgutil.iter_modules(path, prefix), key=lambda i: i.name):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            try:
                module = importlib.import_module(info.name)
            except BaseException as exc:
                errors.append(_describe_import_error(info.name, exc))
                continue
            if info.ispkg:
                walk(list(module.__path__), info.name + ".")

    walk(list(package.__path__), PACKAGE + ".")
    return errors


class _Method:
    """A resolved method and what its calls need, computed once per worker."""

    __slots__ = ("direct", "function", "hints", "is_async", "lock", "one_at_a_time", "validator")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.validator = params.schema_validator(function)
        # params validated and converted from the type hints (None: no hints, or a schema)
        self.hints = params.hint_validator(function) if self.validator is None else None
        # A wrapper (functools.wraps) would report a binding error one frame deeper: check
        # its signature before the call instead of reading the traceback after it.
        self.direct = not hasattr(getattr(function, "__func__", function), "__wrapped__")
        self.is_async = inspect.iscoroutinefunction(function)
        self.one_at_a_time = bool(getattr(function, ONE_AT_A_TIME_ATTRIBUTE, False))
        self.lock: asyncio.Lock | None = None


_PLAIN_RESULTS = (str, int, float, bool, type(None), list, dict, tuple)

Answer = tuple[int, bytes]


class Runner:
    """Runs calls: resolve the method, bind params, call it, encode the result.

    Args:
        debug: add the traceback to ``error.data`` of methods that raise.
        loop: the worker's event loop; a plain function that returns an awaitable has it
            awaited there.
        expose_errors: ``error.data.message`` of a method that raises is the exception's
            text; False: a pointer to its log record (:mod:`executor.method_errors`).

    Every ``run*`` method returns ``(framing.RESULT, result JSON)`` or
    ``(framing.ERROR, error object JSON)`` and raises nothing but ``BaseException``\\ s that
    are not ``Exception``\\ s (e.g. ``SystemExit``, ``CancelledError``).
    """

    def __init__(
        self, debug: bool, loop: asyncio.AbstractEventLoop, expose_errors: bool = True
    ) -> None:
        self.debug = debug
        self.loop = loop
        self.expose_errors = expose_errors
        self._methods: dict[str, _Method] = {}

    def method(self, name: str) -> _Method:
        """The resolved method ``name`` (cached). Raises: JsonRpcError (e.g. MethodNotFound)."""
        method = self._methods.get(name)
        if method is None:
            method = self._methods[name] = _Method(resolve(name))
        return method

    def _run_internal(self, name: str, call_params: Any) -> Answer:
        handler = INTERNAL_METHODS.get(name)
        try:
            if handler is None:
                raise MethodNotFound()
            return framing.RESULT, encode(handler(call_params))
        except JsonRpcError as error:
            return framing.ERROR, self.encode_error(error)
        except Exception as exc:
            logger.exception("internal method %s failed", name)
            return framing.ERROR, self.encode_error(
                InternalError(data={"type": type(exc).__name__, "message": str(exc)})
            )

    def _raised(self, method_name: str, exc: Exception) -> MethodRaised:
        log_raised(method_name, exc)
        return MethodRaised(data=error_data(exc, self.debug, self.expose_errors))

    def _prepare(self, method: _Method, call_params: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if method.hints is not None:
            return params.convert(method.hints, call_params)
        if method.validator is not None:
            params.validate(method.validator, call_params)
        args, kwargs = params.split(call_params)
        if not method.direct:
            params.check_binding(method.function, args, kwargs)
        return args, kwargs

    def _invoke(
        self, method: _Method, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Call the function; map a binding TypeError to -32602, any other error to -32000."""
        try:
            return method.function(*args, **kwargs)
        except JsonRpcError as error:
            log_refused(name, error)
            raise
        except TypeError as exc:
            failure = params.binding_failure(exc) if method.direct else None
            raise (failure or self._raised(name, exc)) from None
        except Exception as exc:
            raise self._raised(name, exc) from None

    def run(self, name: str, call_params: Any) -> Answer:
        """Run one call of a plain function (or an ``rpc.*`` method) in the calling thread.

        A result that is awaitable is awaited on the worker's loop (the thread waits).
        """
        if name.startswith("rpc."):
            return self._run_internal(name, call_params)
        try:
            method = self.method(name)
            args, kwargs = self._prepare(method, call_params)
            result = self._invoke(method, name, args, kwargs)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                try:
                    result = asyncio.run_coroutine_threadsafe(_awaited(result), self.loop).result()
                except JsonRpcError as error:
                    log_refused(name, error)
                    raise
                except Exception as exc:
                    raise self._raised(name, exc) from None
            return framing.RESULT, encode(result)
        except JsonRpcError as error:
            return framing.ERROR, self.encode_error(error)

    async def run_async(self, method: _Method, name: str, call_params: Any) -> Answer:
        """Run one call of ``method`` on the worker's loop (an ``async def``, or any method
        marked one at a time: a plain one then runs in a thread of ``threads``)."""
        try:
            args, kwargs = self._prepare(method, call_params)
            result = self._invoke(method, name, args, kwargs)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                try:
                    result = await result
                except JsonRpcError as error:
                    log_refused(name, error)
                    raise
                except Exception as exc:
                    raise self._raised(name, exc) from None
            return framing.RESULT, encode(result)
        except JsonRpcError as error:
            return framing.ERROR, self.encode_error(error)

    @staticmethod
    def encode_error(error: JsonRpcError) -> bytes:
        """The error object of ``error`` as JSON; -32603 when its data cannot be encoded."""
        try:
            return encode(error.to_object())
        except InternalError as encoding_error:
            fallback = InternalError(
                message="error data cannot be encoded as JSON", data=encoding_error.data
            )
            return encode(fallback.to_object())


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class _Threads:
    """A bounded pool of threads for plain functions, grown as calls need them, up to ``limit``.

    Cheaper per call than :class:`concurrent.futures.ThreadPoolExecutor` (no future per job:
    a job answers its call itself), and it wakes as few threads as it can: a job submitted
    while every thread sleeps wakes one (the one that slept least: its memory is warm); a job
    submitted while some thread runs waits for it, as it takes the next job when its own is
    done. When :data:`GROW_DELAY_S` later jobs still wait and no thread finished a job
    meanwhile (the threads are blocked, not merely busy), more threads take waiting jobs (a
    sleeping one woken, else a new one started), at most as many as are awake: the awake
    threads at most double at each look. So short calls are served one after the other by one
    awake thread, however many arrive at once (each hand-off between threads costs system calls
    and a switch), and each of a crowd of blocking calls gets its own thread within a few
    milliseconds (a thousand within about ten looks).

    A job writes its answer to the output pipe itself, from its thread, at once: the answer
    never waits for the loop (which a method may keep busy) nor for the jobs behind it.

    Args:
        limit: most threads.
        loop: the worker's event loop (it times the growth).
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self._limit = limit
        self._loop = loop
        self._lock = threading.Lock()  # guards every field below
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._threads = 0
        self._awake = 0  # threads running a job or about to take one
        self._woken = 0  # of those, threads woken (or started) that have not looked for a job yet
        self._sleeping: list[threading.Lock] = []  # a held lock per sleeping thread, LIFO
        self._stopping = False
        self._done = 0  # jobs finished, ever
        self._done_seen = 0
        self._grow_timer: asyncio.TimerHandle | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` in a thread; it must not raise (an escaping error is logged).

        Call from the loop's thread.
        """
        with self._lock:
            self._jobs.append(job)
            if self._awake:  # a running thread takes it next, or the growth timer acts
                wake = None
            else:  # every thread sleeps (then no job waits): wake one or start the first
                self._awake = self._woken = 1
                wake = self._sleeping.pop() if self._sleeping else self._start_thread()
        if wake is not None:
            wake.release()
        elif self._grow_timer is None:
            self._watch()

    def _watch(self) -> None:
        """Look at the waiting jobs in :data:`GROW_DELAY_S` (:meth:`_grow`)."""
        self._done_seen = self._done
        self._grow_timer = self._loop.call_later(GROW_DELAY_S, self._grow)

    def _grow(self) -> None:
        """If no thread made progress, give waiting jobs more threads
        (at most as many as are awake, so that a busy machine, which delays the threads, does
        not wake them all); look again while jobs are queued.
        """
        self._grow_timer = None
        wakes: list[threading.Lock] = []
        with self._lock:
            queued = len(self._jobs)
            waiting = queued - self._woken
            if waiting > 0 and self._done == self._done_seen:
                idle = len(self._sleeping) + self._limit - self._threads
                count = min(waiting, max(self._awake, 1), idle)
                self._awake += count
                self._woken += count
                for _ in range(count):
                    wakes.append(self._sleeping.pop() if self._sleeping else self._start_thread())
        for wake in wakes:
            wake.release()
        if queued:
            self._watch()

    def _start_thread(self) -> threading.Lock:
        """Start one thread (under ``_lock``, counted awake by the caller); return its wake-up
        lock, already held: the caller releases it once ``_lock`` is released."""
        self._threads += 1
        wake = threading.Lock()
        wake.acquire()
        name = f"sbusr-call-{self._threads}"
        threading.Thread(target=self._work, args=(wake,), name=name, daemon=True).start()
        return wake

    def _work(self, wake: threading.Lock) -> None:
        """A thread's life: wait to be woken, run jobs while there are, sleep again."""
        jobs, lock = self._jobs, self._lock
        wake.acquire()
        woken, finished = True, False
        while True:
            with lock:
                if woken:
                    self._woken -= 1
                if finished:
                    self._done += 1
                job = jobs.popleft() if jobs else None
                if job is None:
                    if self._stopping:
                        return
                    self._awake -= 1
                    self._sleeping.append(wake)
            if job is None:
                wake.acquire()  # until submit, _grow or stop releases it
                woken, finished = True, False
                continue
            woken = False
            try:
                job()
            except Exception:
                logger.exception("a call's thread failed")
            finished = True

    def stop(self) -> None:
        """Let every thread end once the jobs queued before are done."""
        if self._grow_timer is not None:
            self._grow_timer.cancel()
        with self._lock:
            self._stopping = True
            sleeping, self._sleeping = self._sleeping, []
            self._woken += len(sleeping)
        for wake in sleeping:
            wake.release()


class _Service:
    """Reads frames, starts calls as tasks or thread jobs, answers them, drains at end of input.

    Args:
        in_fd: the input pipe (made non-blocking).
        channel: the output pipe.
        runner: runs the calls.
        concurrency: most calls at once (threads of the pool).
    """

    def __init__(self, in_fd: int, channel: _Channel, runner: Runner, concurrency: int) -> None:
        self.in_fd = in_fd
        self.channel = channel
        self.runner = runner
        self.loop = runner.loop
        self.threads = _Threads(concurrency, self.loop)
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._in_threads: set[int] = set()
        self._running = 0
        self._running_lock = threading.Lock()
        self._input_open = True
        self._read_buffer = bytearray()
        self._outbox: list[bytes] = []

    def start(self) -> None:
        """Read the input pipe from the loop."""
        os.set_blocking(self.in_fd, False)
        self.loop.add_reader(self.in_fd, self._on_readable)

    # ------------------------------------------------------------------ frames in
    def _on_readable(self) -> None:
        try:
            chunk = os.read(self.in_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._input_open = False
            self.loop.remove_reader(self.in_fd)
            self._check_drained()
            return
        buffer = self._read_buffer
        buffer += chunk
        header = framing.CALLS_HEADER
        position, end_of_data = 0, len(buffer)
        while end_of_data - position >= header.size:
            length, kind = header.unpack_from(buffer, position)
            end = position + header.size + length
            if end > end_of_data:
                break
            body = buffer[position + header.size : end]
            position = end
            if kind == framing.CALLS:
                for call_id, name, call_params, context in framing.unpack_calls(body):
                    self._start(call_id, name, call_params, context)
            elif kind == framing.CANCEL:
                for call_id in framing.unpack_cancel(body):
                    self._cancel(call_id)
            elif kind == framing.WITHDRAW:
                for call_id in framing.unpack_cancel(body):
                    self._withdraw(call_id)
        if position:
            del buffer[:position]

    def _start(
        self, call_id: int, name: str, call_params: Any, context: dict[str, Any] | None
    ) -> None:
        with self._running_lock:
            self._running += 1
        if name.startswith("rpc."):
            method = None
        else:
            try:
                method = self.runner.method(name)
            except JsonRpcError as error:
                self._answer_from_loop(call_id, framing.ERROR, self.runner.encode_error(error))
                return
            except Exception as exc:  # resolution must never end the worker
                logger.exception("resolving %s failed", name)
                failure = InternalError(data={"type": type(exc).__name__, "message": str(exc)})
                self._answer_from_loop(call_id, framing.ERROR, self.runner.encode_error(failure))
                return
        if method is not None and (method.is_async or method.one_at_a_time):
            coroutine = self._run_task(call_id, method, name, call_params, context)
            self._tasks[call_id] = self.loop.create_task(coroutine)
        else:
            self._in_threads.add(call_id)
            run = contextvars.copy_context().run
            self.threads.submit(
                lambda: run(self._run_in_thread, call_id, name, call_params, context)
            )

    def _cancel(self, call_id: int) -> None:
        if call_id in self._in_threads:
            self.channel.send(framing.pack_event(framing.BLOCKED, call_id, b""))
            return
        self._cancel_task(call_id)

    def _withdraw(self, call_id: int) -> None:
        """The caller left: cancel the call's task; a call in a thread runs to its end."""
        self._cancel_task(call_id)

    def _cancel_task(self, call_id: int) -> None:
        """Cancel the call's task, if it has one; its ERROR answer says the call is gone.

        A task cancelled before its first step (its CALLS frame came in the same read) never
        runs its coroutine, so that one is answered here.
        """
        task = self._tasks.get(call_id)
        if task is None:
            return
        task.cancel()
        coroutine = task.get_coro()
        if (
            inspect.iscoroutine(coroutine)
            and inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
        ):
            del self._tasks[call_id]
            self._answer_from_loop(call_id, framing.ERROR, self._cancelled_error())

    # ------------------------------------------------------------------ running
    def _run_in_thread(
        self, call_id: int, name: str, call_params: Any, context: dict[str, Any] | None
    ) -> None:
        call_context.set(context)
        current_call_id.set(call_id)
        try:
            kind, payload = self.runner.run(name, call_params)
        except SystemExit as exc:  # the method ended its process: like os._exit
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException as exc:
            logger.exception("call %s failed in its thread", name)
            error = InternalError(data={"type": type(exc).__name__, "message": str(exc)})
            kind, payload = framing.ERROR, self.runner.encode_error(error)
        self._in_threads.discard(call_id)
        self.channel.send(framing.pack_event(kind, call_id, payload))
        self._finished(in_loop=False)

    async def _run_task(
        self,
        call_id: int,
        method: _Method,
        name: str,
        call_params: Any,
        context: dict[str, Any] | None,
    ) -> None:
        call_context.set(context)
        current_call_id.set(call_id)
        try:
            if not method.one_at_a_time:
                kind, payload = await self.runner.run_async(method, name, call_params)
            else:
                if method.lock is None:
                    method.lock = asyncio.Lock()
                async with method.lock:
                    if method.is_async:
                        kind, payload = await self.runner.run_async(method, name, call_params)
                    else:
                        await self._one_in_thread(call_id, name, call_params, context)
                        return
        except asyncio.CancelledError:
            kind, payload = framing.ERROR, self._cancelled_error()
        finally:
            self._tasks.pop(call_id, None)
        self._answer_from_loop(call_id, kind, payload)

    async def _one_in_thread(
        self, call_id: int, name: str, call_params: Any, context: dict[str, Any] | None
    ) -> None:
        """Run a plain method marked one at a time in a thread; return when it answered."""
        finished: asyncio.Future[None] = self.loop.create_future()

        def job() -> None:
            try:
                self._run_in_thread(call_id, name, call_params, context)
            finally:
                self.loop.call_soon_threadsafe(_set_done, finished)

        self._tasks.pop(call_id, None)
        self._in_threads.add(call_id)
        run = contextvars.copy_context().run
        self.threads.submit(lambda: run(job))
        await asyncio.shield(finished)

    # ------------------------------------------------------------------ answers
    def _cancelled_error(self) -> bytes:
        error = CallTimeout(
            message="the call was cancelled at its time limit", data={"reason": "cancelled"}
        )
        return self.runner.encode_error(error)

    def _answer_from_loop(self, call_id: int, kind: int, payload: bytes) -> None:
        """Queue an answer; the answers of one loop turn leave in one write."""
        if not self._outbox:
            self.loop.call_soon(self._flush)
        self._outbox.append(framing.pack_event(kind, call_id, payload))
        self._finished(in_loop=True)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        self.channel.send(b"".join(frames))
        self._check_drained()

    def _finished(self, in_loop: bool) -> None:
        with self._running_lock:
            self._running -= 1
            idle = self._running == 0
        if idle and not self._input_open:
            if in_loop:
                self.loop.call_soon(self._check_drained)
            else:
                self.loop.call_soon_threadsafe(self._check_drained)

    def _check_drained(self) -> None:
        if not self._input_open and not self._running and not self._outbox and not self.done.done():
            self.done.set_result(None)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _new_loop() -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop's when it is installed (cheaper per call), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(argv: list[str], preloaded: dict[str, Any] | None = None) -> int:
    """Entry point: ``argv`` is ``[IN_FD, OUT_FD, METHODS_DIR, DEBUG, LOG_LEVEL, CONCURRENCY,
    EXPOSE_ERRORS]``.

    DEBUG and EXPOSE_ERRORS are "1" or "0" (EXPOSE_ERRORS absent: "1"); LOG_LEVEL a number of
    :mod:`logging`; CONCURRENCY the most calls run at once (threads for plain functions).
    ``preloaded``: ``{"errors", "code"}`` from :func:`preload` when the process was forked
    from a template that imported the methods package already (nothing is imported again).
    Returns the exit code (0 after end of input).
    """
    in_fd, out_fd = int(argv[0]), int(argv[1])
    methods_dir = Path(argv[2])
    debug = argv[3] == "1"
    log_level = int(argv[4])
    concurrency = int(argv[5]) if len(argv) > 5 else 1
    expose_errors = argv[6] != "0" if len(argv) > 6 else True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _Channel(out_fd)
    _route_output(channel, log_level)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    load_internal_methods()
    if preloaded is None:
        preloaded = {"code": code_fingerprint(methods_dir), "errors": import_methods(methods_dir)}
    ready = {"pid": os.getpid(), "errors": preloaded["errors"], "code": preloaded["code"]}
    channel.send(framing.pack_event(framing.READY, 0, json.dumps(ready).encode()))
    service = _Service(in_fd, channel, Runner(debug, loop, expose_errors), max(1, concurrency))
    service.start()
    try:
        loop.run_until_complete(service.done)
    finally:
        service.threads.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
