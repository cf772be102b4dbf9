"""The server's own methods that must run inside a worker (they need the user's code).

Names start with ``rpc.``, which resolution refuses for callers: only the server submits
them (e.g. through :meth:`executor.pool.Pool.run`). A handler takes the call's params and
returns a JSON-encodable value, or raises :class:`~wire.errors.JsonRpcError`.

Register with::

    @internal_method("rpc.example")
    def example(params): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["INTERNAL_METHODS", "internal_method", "load_internal_methods"]

#: name -> handler(params) -> result
INTERNAL_METHODS: dict[str, Callable[[Any], Any]] = {}

#: modules that register internal methods; imported by the worker at start
INTERNAL_MODULES: tuple[str, ...] = ("executor.discover", "executor.scheduled")


def internal_method(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``handler`` as the worker-side method ``name`` (which must start with ``rpc.``)."""
    if not name.startswith("rpc."):
        raise ValueError(f"internal method names start with 'rpc.': {name!r}")

    def register(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        INTERNAL_METHODS[name] = handler
        return handler

    return register


def load_internal_methods() -> None:
    """Import every module of :data:`INTERNAL_MODULES` so that its methods are registered."""
    import importlib

    for module in INTERNAL_MODULES:
        importlib.import_module(module)
