"""JSON text in and out, the same way everywhere (RFC 8259).

* :func:`decode_strict` refuses what RFC 8259 does not allow and Python's ``json`` does:
  ``NaN``, ``Infinity``, numbers out of float range. Callers map its errors to -32700 or 400.
* :func:`encode_compact` writes the shortest form: no spaces, UTF-8 as is, no NaN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["decode_strict", "encode_compact"]

_INFINITY = float("inf")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INFINITY, -_INFINITY):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def decode_strict(payload: bytes | bytearray | memoryview | str) -> Any:
    """Parse strict JSON text (RFC 8259).

    Args:
        payload: UTF-8 bytes or text.

    Returns:
        The value: dict, list, str, int, float, bool or None.

    Raises:
        ValueError: not JSON, NaN/Infinity, or a number out of float range
            (``json.JSONDecodeError`` is a ValueError).
        UnicodeDecodeError: bytes that are not UTF-8 (also a ValueError).
        RecursionError: nested too deeply for the parser.
    """
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8")
    elif isinstance(payload, memoryview):
        payload = payload.tobytes().decode("utf-8")
    return _decoder.decode(payload)


def encode_compact(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Encode ``value`` as compact JSON: ``{"a":[1,2]}``, UTF-8 bytes, non-ASCII kept as is.

    Args:
        value: a JSON-encodable value.
        default: called for objects ``json`` cannot encode; returns an encodable stand-in or
            raises TypeError (see :func:`json.dumps`).

    Returns:
        UTF-8 bytes.

    Raises:
        TypeError: a value that is not JSON-encodable (and ``default`` did not convert).
        ValueError: NaN or Infinity, or a circular reference.
        RecursionError: nested too deeply.
    """
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=default
    ).encode()
