"""The registry of the server's own methods that run inside a worker (``rpc.*``).

Names start with ``rpc.`` (:data:`wire.names.RESERVED_PREFIX`), which resolution refuses for
callers: only the server submits them (e.g. through :meth:`executor.pool.Pool.run`). A handler
takes the call's params and returns a JSON-encodable value, or raises
:class:`~wire.errors.JsonRpcError`. The methods themselves are in :mod:`catalog.rpc_methods`;
the worker imports :data:`INTERNAL_MODULES` at start (:func:`load_internal_methods`).

Register with::

    @internal_method("rpc.example")
    def example(params): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from wire.names import RESERVED_PREFIX, is_reserved

__all__ = ["INTERNAL_METHODS", "INTERNAL_MODULES", "internal_method", "load_internal_methods"]

#: A worker-side method: ``handler(params) -> result``.
Handler = TypeVar("Handler", bound=Callable[[Any], Any])

#: name -> handler(params) -> result
INTERNAL_METHODS: dict[str, Callable[[Any], Any]] = {}

#: modules that register internal methods; imported by the worker at start
INTERNAL_MODULES: tuple[str, ...] = ("catalog.rpc_methods",)


def internal_method(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated handler as the worker-side method ``name``.

    Args:
        name: the method name; it must start with ``rpc.``.

    Returns:
        A decorator that records the handler in :data:`INTERNAL_METHODS` and returns it
        unchanged.

    Raises:
        ValueError: ``name`` does not start with ``rpc.``.
    """
    if not is_reserved(name):
        raise ValueError(f"internal method names start with {RESERVED_PREFIX!r}: {name!r}")

    def register(handler: Handler) -> Handler:
        INTERNAL_METHODS[name] = handler
        return handler

    return register


def load_internal_methods() -> None:
    """Import every module of :data:`INTERNAL_MODULES` so that its methods are registered.

    Raises:
        ImportError: a module of :data:`INTERNAL_MODULES` cannot be imported.
    """
    for module in INTERNAL_MODULES:
        importlib.import_module(module)
