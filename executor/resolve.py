"""Method resolution: a dotted JSON-RPC method name to a callable of the methods package.

This is the security boundary of design.md ("Method resolution"). ``a.b.c`` means
``methods.a.b.c``; submodules are imported on demand. Reachable:

* functions (plain or ``async def``) defined in the methods package, i.e. whose
  ``__module__`` is ``methods`` or starts with ``methods.``;
* classmethods and staticmethods of classes defined there.

Never reachable: a segment starting with ``_``; anything imported into a methods module from
outside the package (``os`` imported in ``methods/__init__.py`` is not ``methods.os``); classes
themselves; instance methods; non-callables; names under ``rpc.`` (the server's own).

The syntax half of the check is :func:`wire.names.is_reachable_name`. Runs inside worker
processes only: the server process never imports the user's code.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import types
from collections.abc import Callable
from typing import Any

from wire.errors import InternalError, MethodNotFound
from wire.names import is_reachable_name

__all__ = ["PACKAGE", "is_inside_package", "resolve"]

#: The package of the user's methods: the method ``a.b`` is ``methods.a.b``.
PACKAGE = "methods"


def is_inside_package(module_name: object) -> bool:
    """Tell whether ``module_name`` (e.g. a ``__module__``) is ``methods`` or ``methods.*``."""
    return isinstance(module_name, str) and (
        module_name == PACKAGE or module_name.startswith(PACKAGE + ".")
    )


def _import_submodule(package: types.ModuleType, segment: str) -> types.ModuleType | None:
    """Import ``package.segment`` when the package has such a submodule, else return None."""
    if not hasattr(package, "__path__"):
        return None
    name = package.__name__ + "." + segment
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.import_module(name)
    except Exception as exc:  # the user's module is broken: say so instead of "not found"
        raise InternalError(
            message=f"cannot import {name}", data={"type": type(exc).__name__, "message": str(exc)}
        ) from exc


def _class_member(cls: type, segment: str) -> Callable[..., Any] | type:
    """Return a classmethod/staticmethod (bound) or a nested class of ``cls`` named ``segment``."""
    try:
        static = inspect.getattr_static(cls, segment)
    except AttributeError:
        raise MethodNotFound() from None
    if isinstance(static, (classmethod, staticmethod)):
        bound: Callable[..., Any] = getattr(cls, segment)
        return bound
    if inspect.isclass(static) and is_inside_package(static.__module__):
        return static
    raise MethodNotFound()


def resolve(method: str) -> Callable[..., Any]:
    """Find the callable for a JSON-RPC method name.

    Args:
        method: dotted name relative to the methods package, e.g. ``"add"`` or
            ``"bar.boo.loo.Loo.dec"``.

    Returns:
        The function, or the bound classmethod / staticmethod function, to call.

    Raises:
        MethodNotFound: no such method, or resolution refuses the name (see module doc).
        InternalError: a submodule on the path exists but fails to import.
    """
    if not is_reachable_name(method):
        raise MethodNotFound()
    try:
        target: Any = importlib.import_module(PACKAGE)
    except ImportError as exc:  # the package failed to import in this worker
        raise InternalError(
            message="the methods package failed to import",
            data={"type": type(exc).__name__, "message": str(exc)},
        ) from None
    from_class = False
    for segment in method.split("."):
        if inspect.isclass(target):
            target = _class_member(target, segment)
            from_class = True
            continue
        if not isinstance(target, types.ModuleType):
            raise MethodNotFound()
        attribute = getattr(target, segment, None)
        if attribute is None:
            attribute = _import_submodule(target, segment)
        elif (
            isinstance(attribute, types.ModuleType)
            and attribute.__name__ != target.__name__ + "." + segment
        ):
            raise MethodNotFound()  # a module imported from elsewhere
        if attribute is None:
            raise MethodNotFound()
        if isinstance(attribute, types.ModuleType):
            target = attribute
        elif inspect.isclass(attribute):
            if not is_inside_package(attribute.__module__):
                raise MethodNotFound()
            target = attribute
        elif inspect.isfunction(attribute) and is_inside_package(attribute.__module__):
            target = attribute
        else:
            raise MethodNotFound()
    if from_class:
        function = getattr(target, "__func__", target)
        if inspect.isfunction(function) and is_inside_package(function.__module__):
            found: Callable[..., Any] = target
            return found
        raise MethodNotFound()
    if inspect.isfunction(target):
        return target
    raise MethodNotFound()
