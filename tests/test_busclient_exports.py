"""The public names of ``busclient`` and the layering they stand for.

* ``busclient.__all__`` is exactly the expected list, sorted; each name resolves and is
  documented (named in the package docstring; classes and functions have a docstring).
* ``busclient`` imports nothing of sbusr but ``wire`` and ``settings``.
* No module of the tree imports another package's private (underscore) module: what a
  package shares is re-exported by its ``__init__``.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import busclient
from tests.support import PROJECT_DIR

#: The top-level packages and modules of sbusr (pyproject.toml, ruff's known-first-party).
FIRST_PARTY = {
    "bench",
    "busclient",
    "executor",
    "kit",
    "methods",
    "run",
    "server",
    "settings",
    "tests",
    "wire",
}


def test_the_exports_are_the_expected_ones() -> None:
    assert busclient.__all__ == sorted(
        [
            "AsyncBusClient",
            "AsyncReplyReader",
            "BusClient",
            "BusConnectionError",
            "BusError",
            "BusKeys",
            "BusPeer",
            "BusTimeout",
            "CONNECTION_ERRORS",
            "FlowStart",
            "Outage",
            "Outbox",
            "REPLY_BLOCK_S",
            "RpcError",
            "RpcTimeout",
            "Script",
            "UNUSABLE_ERRORS",
            "as_text",
            "async_redis",
            "cancel_and_wait",
            "stream_entries",
            "sync_redis",
        ]
    )


def test_every_exported_name_resolves_and_is_documented() -> None:
    package_doc = busclient.__doc__ or ""
    for name in busclient.__all__:
        value = getattr(busclient, name)
        assert value is not None, name
        assert re.search(rf"\b{re.escape(name)}\b", package_doc), f"{name} not in the docstring"
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def _python_files() -> Iterator[Path]:
    for path in sorted(PROJECT_DIR.rglob("*.py")):
        if ".venv" not in path.relative_to(PROJECT_DIR).parts:
            yield path


def _top_package(path: Path) -> str:
    """``server/bus/flow.py`` -> ``server``; ``run.py`` -> ``run``."""
    return path.relative_to(PROJECT_DIR).parts[0].removesuffix(".py")


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted module name)`` of each absolute import of ``path``.

    ``from pkg import name`` yields ``pkg.name`` when that is a module of the tree (a file
    or a folder beside ``pkg/__init__.py``), else ``pkg``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            folder = PROJECT_DIR.joinpath(*node.module.split("."))
            for alias in node.names:
                if (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir():
                    yield node.lineno, f"{node.module}.{alias.name}"


def _is_private(segment: str) -> bool:
    return segment.startswith("_") and not (segment.startswith("__") and segment.endswith("__"))


def test_busclient_imports_only_wire_and_settings_of_sbusr() -> None:
    found = [
        f"{path.relative_to(PROJECT_DIR)}:{line}: {module}"
        for path in (PROJECT_DIR / "busclient").rglob("*.py")
        for line, module in _imported_modules(path)
        if module.split(".")[0] in FIRST_PARTY - {"busclient", "wire", "settings"}
    ]
    assert found == []


def test_no_module_imports_another_packages_private_module() -> None:
    found = [
        f"{path.relative_to(PROJECT_DIR)}:{line}: {module}"
        for path in _python_files()
        for line, module in _imported_modules(path)
        if module.split(".")[0] != _top_package(path)
        and any(_is_private(segment) for segment in module.split(".")[1:])
    ]
    assert found == []
