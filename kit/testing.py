"""Test a method as it will be served, in the test's own process.

:func:`call` takes a JSON-RPC method name and params as a caller sends them and goes through
the worker's own code (:class:`executor.worker.Runner`): resolution, ``@params_schema`` or
type-hint validation and conversion, the call (an ``async def`` method on an event loop, a plain
function in a thread, as in a worker), and the JSON encoding of the result. It returns the
result decoded from that JSON, or raises the :class:`~wire.errors.JsonRpcError` a caller would
get (same ``code``, ``message`` and ``data``)::

    from kit.testing import call
    from kit import JsonRpcError

    def test_double() -> None:
        assert call("mymodule.double", ["21"]) == 42
        with pytest.raises(JsonRpcError) as caught:
            call("mymodule.double", ["lots"])
        assert caught.value.code == -32602

``call(name, params, deadline_ms=...)`` runs the method as a call with that caller's deadline
(Unix epoch milliseconds), so that :func:`kit.deadline_ms` and :func:`kit.time_left_s` answer
as in a worker; the deadline itself is not enforced here.

The methods package is the folder of the settings (``SBUSR_METHODS_DIR``, default
``./methods``), imported on the first call; :func:`load_methods` picks another folder.

To test over HTTP against the real server, see :mod:`kit.pytest_plugin`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import threading
from pathlib import Path
from typing import Any

from executor import framing
from executor.context import call_context
from executor.internal import load_internal_methods
from executor.resolve import PACKAGE
from executor.worker import Runner, import_methods
from wire.errors import JsonRpcError

__all__ = ["acall", "call", "load_methods", "MethodsImportError"]

_lock = threading.Lock()
_runner: Runner | None = None


class MethodsImportError(ImportError):
    """A module of the methods package failed to import (``errors`` lists each one as
    ``{"module", "type", "message"}``, as ``/sys/reset`` reports them)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['module']}: {e['type']}: {e['message']}" for e in errors))
        self.errors = errors


def load_methods(methods_dir: str | Path | None = None) -> None:
    """Import the methods package from ``methods_dir`` as a worker does (every submodule).

    Args:
        methods_dir: the folder; default the settings' methods folder (``SBUSR_METHODS_DIR``).

    Raises:
        MethodsImportError: a module failed to import.
    """
    if methods_dir is None:
        import settings

        methods_dir = settings.load().methods_dir
    errors = import_methods(Path(methods_dir).resolve())
    if errors:
        raise MethodsImportError(errors)


def _get_runner() -> Runner:
    """The process's runner, its event loop served by a daemon thread (started once)."""
    global _runner
    with _lock:
        if _runner is None:
            if PACKAGE not in sys.modules:
                load_methods()
            load_internal_methods()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="sbusr-testing-loop", daemon=True
            )
            thread.start()
            _runner = Runner(debug=False, loop=loop)
        return _runner


async def _run(
    runner: Runner, name: str, params: Any, deadline_ms: float | None
) -> tuple[int, bytes]:
    """Run one call on the runner's loop, the way the worker's service starts it."""
    call_context.set(None if deadline_ms is None else {"deadline_ms": deadline_ms})
    if not name.startswith("rpc."):
        try:
            method = runner.method(name)
        except JsonRpcError as error:
            return framing.ERROR, runner.encode_error(error)
        if method.is_async:
            return await runner.run_async(method, name, params)
    context = contextvars.copy_context()  # the thread sees this call's context, as in a worker
    return await asyncio.get_running_loop().run_in_executor(
        None, context.run, runner.run, name, params
    )


def _decode(kind: int, payload: bytes) -> Any:
    """The decoded result, or the error object raised as a JsonRpcError."""
    value = json.loads(payload)
    if kind == framing.RESULT:
        return value
    raise JsonRpcError(value["code"], value["message"], value.get("data"))


def call(
    name: str,
    params: list[Any] | dict[str, Any] | None = None,
    *,
    deadline_ms: float | None = None,
) -> Any:
    """Call a method in-process exactly as a worker would and return its decoded JSON result.

    Args:
        name: the JSON-RPC method name, e.g. ``"greetings.greet"``.
        params: positional (list) or named (dict) params as a caller sends them, or None.
        deadline_ms: the caller's deadline the method reads (:func:`kit.deadline_ms`), Unix
            epoch milliseconds; None: no deadline. It is not enforced here.

    Returns:
        The result as the caller decodes it from JSON (a ``datetime`` is an ISO string, a
        dataclass a dict, ...).

    Raises:
        JsonRpcError: the error object the caller would get (``code``, ``message``, ``data``):
            -32601 unknown method, -32602 params refused, -32000 the method raised, -32603
            a result that cannot be encoded, or the method's own code.
        MethodsImportError: the methods package failed to import (first call).

    Blocks the calling thread: from an ``async def`` test use :func:`acall`.
    """
    runner = _get_runner()
    kind, payload = asyncio.run_coroutine_threadsafe(
        _run(runner, name, params, deadline_ms), runner.loop
    ).result()
    return _decode(kind, payload)


async def acall(
    name: str,
    params: list[Any] | dict[str, Any] | None = None,
    *,
    deadline_ms: float | None = None,
) -> Any:
    """:func:`call` for ``async def`` tests: the same, awaited (the caller's loop stays free)."""
    runner = _get_runner()
    future = asyncio.run_coroutine_threadsafe(_run(runner, name, params, deadline_ms), runner.loop)
    kind, payload = await asyncio.wrap_future(future)
    return _decode(kind, payload)
