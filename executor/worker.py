"""A worker process: imports the methods package and runs the calls the server sends.

Started by the pool as ``python -m executor.worker IN_FD OUT_FD METHODS_DIR DEBUG LOG_LEVEL``. It reads
call frames from IN_FD and writes one RESULT or ERROR frame per call to OUT_FD, in order
(format: :mod:`executor.framing`). Log records of the process travel to the server as LOG
frames, so they reach the server's handlers at their own levels. End of input (the server
closed the pipe) makes the worker exit 0 after the call it is running.

The worker's standard output is redirected to its standard error, so ``print`` in a method
cannot corrupt the pipe; SIGINT is ignored (the server decides when workers stop).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import pickle
import pkgutil
import signal
import sys
import threading
import traceback
import types
from pathlib import Path
from typing import Any, Callable

from executor import framing, params
from executor.context import call_context
from executor.encoding import encode
from wire.errors import InternalError, JsonRpcError, MethodNotFound, MethodRaised
from executor.internal import INTERNAL_METHODS, load_internal_methods
from executor.resolve import PACKAGE, resolve

__all__ = ["main", "call_context"]

logger = logging.getLogger(__name__)



class _Channel:
    """The worker's end of the two pipes; writes are serialised for threads that log."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._lock = threading.Lock()
        self._buffer = bytearray()

    def send(self, frame: bytes) -> None:
        with self._lock:
            view = memoryview(frame)
            while view:
                written = os.write(self.out_fd, view)
                view = view[written:]

    def receive(self) -> list[framing.CallTuple] | None:
        """Block until one calls frame is complete; None at end of input."""
        header_size = framing.CALLS_HEADER.size
        while True:
            if len(self._buffer) >= header_size:
                (length,) = framing.CALLS_HEADER.unpack_from(self._buffer)
                end = header_size + length
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[header_size:end])
                    del self._buffer[:end]
                    return framing.unpack_calls(body)
            chunk = os.read(self.in_fd, 1 << 18)
            if not chunk:
                return None
            self._buffer += chunk


class _PipeLogHandler(logging.Handler):
    """Sends every log record to the server as a LOG frame."""

    def __init__(self, channel: _Channel) -> None:
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
            try:
                payload = pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an unpicklable extra: keep the standard attributes only
                keep = ("name", "msg", "levelno", "levelname", "pathname", "lineno", "funcName",
                        "created", "process", "processName", "threadName", "exc_text", "module")
                payload = pickle.dumps({key: fields.get(key) for key in keep})
            self._channel.send(framing.pack_event(framing.LOG, 0, payload))
        except Exception:
            self.handleError(record)


def _install_methods_package(methods_dir: Path) -> types.ModuleType:
    """Import the folder ``methods_dir`` as the package ``methods``, whatever its folder name."""
    init = methods_dir / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location(
            PACKAGE, init, submodule_search_locations=[str(methods_dir)])
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
        digest.update(b"%s %d %d\n" % (str(path.relative_to(methods_dir)).encode(), stat.st_size,
                                        stat.st_mtime_ns))
    return digest.hexdigest()[:16]


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

    __slots__ = ("function", "validator", "direct", "is_async")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.validator = params.schema_validator(function)
        # A wrapper (functools.wraps) would report a binding error one frame deeper: check
        # its signature before the call instead of reading the traceback after it.
        self.direct = not hasattr(getattr(function, "__func__", function), "__wrapped__")
        self.is_async = inspect.iscoroutinefunction(function)


_PLAIN_RESULTS = (str, int, float, bool, type(None), list, dict, tuple)


class Runner:
    """Runs calls: resolve the method, bind params, call it, encode the result.

    Args:
        debug: add the traceback to ``error.data`` of methods that raise.
    """

    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self._methods: dict[str, _Method] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _method(self, name: str) -> _Method:
        method = self._methods.get(name)
        if method is None:
            method = self._methods[name] = _Method(resolve(name))
        return method

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)

    def _run_internal(self, name: str, call_params: Any) -> tuple[int, bytes]:
        handler = INTERNAL_METHODS.get(name)
        try:
            if handler is None:
                raise MethodNotFound()
            return framing.RESULT, encode(handler(call_params))
        except JsonRpcError as error:
            return framing.ERROR, self._encode_error(error)
        except Exception as exc:
            logger.exception("internal method %s failed", name)
            return framing.ERROR, self._encode_error(InternalError(
                data={"type": type(exc).__name__, "message": str(exc)}))

    def _raised(self, method_name: str, exc: Exception) -> MethodRaised:
        data: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if self.debug:
            data["traceback"] = traceback.format_exc()
        logger.debug("method %s raised %s", method_name, data["type"], exc_info=True)
        return MethodRaised(data=data)

    def run(self, method_name: str, call_params: Any) -> tuple[int, bytes]:
        """Run one call and return ``(framing.RESULT, result JSON)`` or ``(framing.ERROR, error JSON)``."""
        if method_name.startswith("rpc."):
            return self._run_internal(method_name, call_params)
        try:
            method = self._method(method_name)
            if method.validator is not None:
                params.validate(method.validator, call_params)
            args, kwargs = params.split(call_params)
            if not method.direct:
                params.check_binding(method.function, args, kwargs)
            try:
                result = method.function(*args, **kwargs)
                if method.is_async or (type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result)):
                    result = self._await(result)
            except JsonRpcError:
                raise
            except TypeError as exc:
                failure = params.binding_failure(exc) if method.direct else None
                raise (failure or self._raised(method_name, exc)) from None
            except Exception as exc:
                raise self._raised(method_name, exc) from None
            return framing.RESULT, encode(result)
        except JsonRpcError as error:
            return framing.ERROR, self._encode_error(error)

    @staticmethod
    def _encode_error(error: JsonRpcError) -> bytes:
        try:
            return encode(error.to_object())
        except InternalError as encoding_error:
            fallback = InternalError(message="error data cannot be encoded as JSON",
                                     data=encoding_error.data)
            return encode(fallback.to_object())


def _serve(channel: _Channel, runner: Runner) -> None:
    while True:
        calls = channel.receive()
        if calls is None:
            return
        for call_id, method_name, params, context in calls:
            if context is not call_context.get():  # calls of one request share their context
                call_context.set(context)
            kind, payload = runner.run(method_name, params)
            channel.send(framing.pack_event(kind, call_id, payload))


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is ``[IN_FD, OUT_FD, METHODS_DIR, DEBUG, LOG_LEVEL]``.

    DEBUG is "1" or "0"; LOG_LEVEL a number of :mod:`logging`. Returns the exit code.
    """
    in_fd, out_fd = int(argv[0]), int(argv[1])
    methods_dir = Path(argv[2])
    debug = argv[3] == "1"
    log_level = int(argv[4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)  # print() goes to stderr, never into the pipe
    sys.stdout = sys.stderr
    channel = _Channel(in_fd, out_fd)
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(channel)]
    root.setLevel(log_level)
    load_internal_methods()
    fingerprint = code_fingerprint(methods_dir)
    errors = import_methods(methods_dir)
    channel.send(framing.pack_event(framing.READY, 0, json.dumps(
        {"pid": os.getpid(), "errors": errors, "code": fingerprint}).encode()))
    try:
        _serve(channel, Runner(debug))
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
