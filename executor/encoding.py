"""JSON encoding of results and error data, with the conversions methods expect.

One encoder for every value that leaves a method (results and ``JsonRpcError.data``):

=========================================  ==========================================
Python value                               JSON
=========================================  ==========================================
``datetime``, ``date``, ``time``           ISO 8601 string (``datetime.isoformat()``)
``timedelta``                              number of seconds (float)
``Decimal``                                string, exact (``"12.30"``)
``tuple``, ``set``, ``frozenset``          array
``bytes``, ``bytearray``, ``memoryview``   UTF-8 text when valid UTF-8, else base64 string
``uuid.UUID``                              string ``"8-4-4-4-12"``
``enum.Enum``                              its value
dataclass instance                         object of its fields
pydantic model                             ``model.model_dump(mode="json")``
NaN, Infinity                              refused
anything else                              refused
=========================================  ==========================================

A refused value raises :class:`~wire.errors.InternalError`, which the worker answers
as -32603 with ``data = {"type", "message"}`` naming the offending type.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

from wire.codec import encode_compact
from wire.errors import InternalError

__all__ = ["encode", "readable_errors", "readable_text", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Convert one value that ``json`` cannot encode natively (the table of the module doc).

    Args:
        value: any object json.dumps refused.

    Returns:
        A JSON-encodable replacement.

    Raises:
        TypeError: the value has no conversion.
    """
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if model_dump is not None and hasattr(type(value), "__pydantic_serializer__"):
        return model_dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def readable_text(text: str) -> str:
    """``text`` fit for UTF-8: each lone surrogate (from a caller's JSON) as a ``\\udc80`` escape.

    Error messages built from what a caller sent (a parameter name, a path) may hold lone
    surrogates, which UTF-8 cannot carry; escaped, the message still says what was wrong.
    Example: ``"unexpected keyword argument '\\udc80'"`` (a real lone surrogate in the input)
    -> the same text with the six characters backslash, u, d, c, 8, 0.
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def readable_errors(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """``[{"path", "message"}, ...]`` with every text through :func:`readable_text`."""
    return [{key: readable_text(text) for key, text in error.items()} for error in errors]


def encode(value: Any) -> bytes:
    """Encode a value as compact UTF-8 JSON.

    Args:
        value: a result or error data.

    Returns:
        The JSON text as bytes.

    Raises:
        InternalError: the value (or something inside it) cannot be encoded; data is
            ``{"type": "<exception type>", "message": "<why>"}``.
    """
    try:
        return encode_compact(value, default=to_jsonable)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InternalError(
            message="result cannot be encoded as JSON",
            data={"type": type(exc).__name__, "message": str(exc)},
        ) from None
