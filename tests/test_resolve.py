"""Unit tests of method resolution, the security boundary (design.md, "Method resolution")."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.resolve import resolve
from executor.worker import import_methods
from wire.errors import MethodNotFound
from wire.names import is_reachable_name

FIXTURE = Path(__file__).parent / "fixtures" / "resolution_methods"

REACHABLE = {
    "visible": "visible",
    "Klass.class_method": "class",
    "Klass.static_method": "static",
    "Klass.Inner.deep": "deep",
    "sub.function": "sub",
}

REFUSED = [
    "_hidden",
    "os",
    "os.system",
    "ospath.join",
    "collections.OrderedDict",
    "OrderedDict",
    "dumps",
    "imported_function",
    "CONSTANT",
    "Klass",
    "Klass.Inner",
    "Klass.instance_method",
    "Klass._private_static",
    "Klass.borrowed",
    "instance.instance_method",
    "_private.function",
    "rpc.discover",
    "rpc.ping",
    "",
    ".",
    "visible.",
    ".visible",
    "a..b",
    "visible.__globals__",
    "Klass.class_method.__func__",
    "__init__",
    "sub.__name__",
    "missing",
    "sub.missing",
    "subpkg.missing.function",
    "sub.function.extra",
    "subpkg",
    "subpkg.leaf",
    "1abc",
    "vis ible",
    "Klass.__dict__",
    "sys.modules",
]


@pytest.fixture(scope="module", autouse=True)
def resolution_package() -> Iterator[None]:
    saved = {
        name: module
        for name, module in sys.modules.items()
        if name == "methods" or name.startswith("methods.")
    }
    for name in saved:
        del sys.modules[name]
    assert import_methods(FIXTURE) == []
    yield
    for name in [n for n in sys.modules if n == "methods" or n.startswith("methods.")]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.mark.parametrize("name, expected", sorted(REACHABLE.items()))
def test_reachable_methods_resolve(name: str, expected: str) -> None:
    assert resolve(name)() == expected


def test_submodule_is_imported_on_demand() -> None:
    sys.modules.pop("methods.subpkg.leaf", None)
    assert resolve("subpkg.leaf.function")(3) == 6


def test_async_method_resolves_to_its_coroutine_function() -> None:
    import asyncio

    assert asyncio.run(resolve("coroutine_method")()) == "async"


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names(name: str) -> None:
    with pytest.raises(MethodNotFound):
        resolve(name)


@pytest.mark.parametrize(
    "name, reachable",
    [
        ("a.b.c", True),
        ("rpc.discover", False),
        ("a._b", False),
        ("a..b", False),
        ("", False),
        ("a-b", False),
        ("rpcx.y", True),
    ],
)
def test_name_check_before_import(name: str, reachable: bool) -> None:
    assert is_reachable_name(name) is reachable
