"""JSON Schema validation errors as the list sbusr answers with (-32602 data, REST 400 details).

Takes what a ``jsonschema`` validator's ``iter_errors`` yields without importing jsonschema:
each error has ``absolute_path`` (a sequence of keys and indexes) and ``message``.
:class:`LazyValidator` holds a fixed schema and imports jsonschema only when it first
validates, so a process that never validates one (the server at idle) never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["LazyValidator", "error_list", "json_pointer"]


class LazyValidator:
    """A JSON Schema (draft 2020-12) validator of a fixed schema, built on first use.

    The first :meth:`iter_errors` imports ``jsonschema`` (some 3 MB of modules) and compiles
    the schema; until then the process has loaded neither. Safe from several threads: two
    first calls at once may both compile, and either result serves.

    Args:
        schema: a JSON Schema object, assumed valid (a fixed schema of sbusr's own).
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator: Any = None

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        """The ``jsonschema.ValidationError`` objects of ``instance``, lazily (for
        :func:`error_list`); none when it matches."""
        validator = self._validator
        if validator is None:
            import jsonschema

            validator = self._validator = jsonschema.Draft202012Validator(self.schema)
        errors: Iterator[Any] = validator.iter_errors(instance)
        return errors


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
