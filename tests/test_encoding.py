"""Unit tests of result encoding (executor/encoding.py)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import pytest

from executor.encoding import encode
from wire.errors import InternalError


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ({"a": [1, 2.5, "é"]}, {"a": [1, 2.5, "é"]}),
        (datetime.datetime(2024, 5, 6, 7, 8, 9, 123000), "2024-05-06T07:08:09.123000"),
        (datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC), "2024-05-06T07:08:09+00:00"),
        (datetime.date(2024, 5, 6), "2024-05-06"),
        (datetime.time(7, 8, 9), "07:08:09"),
        (datetime.timedelta(minutes=1, milliseconds=500), 60.5),
        (decimal.Decimal("12.30"), "12.30"),
        ((1, 2), [1, 2]),
        ({3}, [3]),
        (frozenset({"x"}), ["x"]),
        (b"caf\xc3\xa9", "café"),
        (bytearray(b"abc"), "abc"),
        (b"\xff\x00", base64.b64encode(b"\xff\x00").decode()),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (Colour.RED, "red"),
        (Point(1, 2), {"x": 1, "y": 2}),
    ],
)
def test_conversions(value: Any, expected: Any) -> None:
    assert json.loads(encode(value)) == expected


@pytest.mark.parametrize(
    "value, type_name",
    [
        (object(), "TypeError"),
        ({"nested": [object()]}, "TypeError"),
        (float("nan"), "ValueError"),
        (float("inf"), "ValueError"),
        ("\ud800", "UnicodeEncodeError"),
    ],
)
def test_unencodable_values_are_internal_errors(value: Any, type_name: str) -> None:
    with pytest.raises(InternalError) as caught:
        encode(value)
    assert caught.value.code == -32603
    assert caught.value.data["type"] == type_name


def test_output_is_compact_utf8() -> None:
    assert encode({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'.encode()
