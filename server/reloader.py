"""``run.py --reload``: a new generation of workers whenever a file of the methods folder changes.

For development (design.md, "Settings": ``--reload``). :func:`watch_methods` runs on the
server's loop: :func:`watchfiles.awatch` reports changes of the methods folder (``*.py``
files; ``__pycache__`` and editor swap files are ignored), grouped over ``debounce_ms``
milliseconds so that an editor's save (write, rename, chmod) gives one reload, then
:meth:`executor.pool.Pool.reload` starts a new generation, exactly as ``GET /sys/reset``
does: running calls finish on the old code, no call is lost.

When the new code fails to import, :class:`~executor.pool.ReloadFailed` is logged, one
line per error with the module, the file and the line (:func:`describe_import_error`),
and the old generation keeps serving until the next change.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import watchfiles

from executor.pool import Pool, ReloadFailed

__all__ = ["DEBOUNCE_MS", "describe_import_error", "watch_methods"]

logger = logging.getLogger(__name__)

#: Changes closer together than this (milliseconds) make one reload.
DEBOUNCE_MS = 300

#: ``"invalid syntax (shop.py, line 3)"``: where :class:`SyntaxError` says it happened.
_SYNTAX_WHERE = re.compile(r"\((?P<file>[^()]+), line (?P<line>\d+)\)\s*$")


class _PythonFiles(watchfiles.DefaultFilter):
    """watchfiles' default filter (no ``__pycache__``, swap files...), ``.py`` files only."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return path.endswith(".py") and super().__call__(change, path)


def _module_file(methods_dir: Path, module: str) -> Path | None:
    """The source file of ``methods.a.b`` under ``methods_dir``, or None when there is none."""
    parts = module.split(".")[1:]
    base = methods_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _syntax_line(path: Path) -> int | None:
    """The line of the first syntax error of ``path`` (compiled, never run), or None."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        return exc.lineno
    except (OSError, ValueError):
        return None
    return None


def describe_import_error(methods_dir: Path, error: dict[str, Any]) -> str:
    """One log line for an import error of :class:`~executor.pool.ReloadFailed`.

    Args:
        methods_dir: the methods folder.
        error: ``{"module", "type", "message", "file"?, "line"?}`` as a worker reports it.

    Returns:
        ``"methods.shop (methods/shop.py, line 3): SyntaxError: invalid syntax ..."``. The
        file and line are the error's own ``file``/``line`` when the worker sent them; else
        the module's source file, and for a syntax error its line (the file is compiled
        here, not run). Without a known line: ``"methods.shop (/path/shop.py): ..."``.
    """
    module = str(error.get("module") or "methods")
    file = error.get("file")
    line = error.get("line")
    if not file:
        found = _module_file(methods_dir, module)
        file = str(found) if found is not None else None
        if found is not None and line is None:
            message = str(error.get("message") or "")
            if _SYNTAX_WHERE.search(message) or str(error.get("type")).endswith(
                ("SyntaxError", "IndentationError", "TabError")
            ):
                line = _syntax_line(found)
    where = ""
    if file:
        where = f" ({file}, line {line})" if line is not None else f" ({file})"
    return "{}{}: {}: {}".format(module, where, error.get("type"), error.get("message"))


async def watch_methods(
    pool: Pool,
    methods_dir: Path,
    debounce_ms: int = DEBOUNCE_MS,
    stop: asyncio.Event | None = None,
) -> None:
    """Start a new generation of ``pool`` after each change under ``methods_dir``; never returns
    until ``stop`` is set or the task is cancelled.

    Args:
        pool: the started pool.
        methods_dir: the folder to watch (recursively).
        debounce_ms: changes within this many milliseconds make one reload.
        stop: set it to end the watch (cancelling the task works too).

    A failed reload is logged (see the module doc) and the watch goes on; so does any other
    error of one reload (logged with its traceback).
    """
    logger.info("reloading on changes of %s", methods_dir)
    async for changes in watchfiles.awatch(
        methods_dir,
        watch_filter=_PythonFiles(),
        debounce=debounce_ms,
        step=min(50, debounce_ms),
        stop_event=stop,
    ):
        changed = sorted({Path(path).name for _, path in changes})
        logger.info("methods changed (%s): reloading", ", ".join(changed))
        try:
            outcome = await pool.reload()
        except ReloadFailed as exc:
            for error in exc.errors:
                logger.error("cannot import %s", describe_import_error(methods_dir, error))
            logger.error(
                "reload refused, generation %d keeps serving; fix the error and save again",
                pool.generation,
            )
        except Exception:
            logger.exception(
                "reload after a change failed; generation %d keeps serving", pool.generation
            )
        else:
            logger.info(
                "generation %d serving (%.0f ms)", outcome["generation"], outcome["elapsed_ms"]
            )
