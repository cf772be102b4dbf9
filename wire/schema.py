"""JSON Schema validation errors as the list sbusr answers with (-32602 data, REST 400 details).

Takes what a ``jsonschema`` validator's ``iter_errors`` yields without importing jsonschema:
each error has ``absolute_path`` (a sequence of keys and indexes) and ``message``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["error_list", "json_pointer"]


def json_pointer(path: Iterable[Any]) -> str:
    """Return the JSON Pointer (RFC 6901) of a path.

    Example: ``["items", 0, "a/b"]`` -> ``"/items/0/a~1b"``.
    """
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path)


def error_list(
    errors: Iterable[Any], message: Callable[[Any], str] | None = None
) -> list[dict[str, str]]:
    """List validation errors as ``[{"path": JSON Pointer, "message": str}, ...]``.

    Args:
        errors: ``jsonschema.ValidationError`` objects (e.g. ``validator.iter_errors(value)``).
        message: optional ``message(error) -> str`` to reword an error; default ``error.message``.

    Returns:
        One entry per error, sorted by path (as text), then by message.
    """
    listed = [
        {
            "path": json_pointer(error.absolute_path),
            "message": message(error) if message is not None else error.message,
        }
        for error in errors
    ]
    listed.sort(key=lambda entry: (entry["path"], entry["message"]))
    return listed
