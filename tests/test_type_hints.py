"""Params from type hints (executor/params.py) and what the OpenRPC document says about them."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
from typing import Any, Literal

import pydantic
import pytest
from typing_extensions import TypedDict

from catalog.openrpc import describe_method
from executor import params
from executor.encoding import encode
from executor.params import params_schema
from wire.errors import InvalidParams


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Item:
    qty: int
    when: datetime.datetime | None = None


class Model(pydantic.BaseModel):
    n: int
    tags: list[str] = []


class Point(TypedDict):
    x: int
    y: int


def hinted(
    n: int,
    item: Item,
    color: Color = Color.RED,
    model: Model | None = None,
    point: Point | None = None,
    mode: Literal["a", "b"] = "a",
    at: datetime.datetime | None = None,
) -> dict[str, Any]:
    return {}


def plain(a, b=2):  # type: ignore[no-untyped-def]
    return a + b


@params_schema({"type": "array", "prefixItems": [{"type": "string"}]})
def with_schema(n: int) -> Any:
    return n


class Unknown:
    pass


def unknown_hint(thing: Unknown) -> Any:
    return thing


def convert(function: Any, call_params: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    validator = params.hint_validator(function)
    assert validator is not None
    return params.convert(validator, call_params)


def errors_of(function: Any, call_params: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidParams) as caught:
        convert(function, call_params)
    errors: list[dict[str, str]] = caught.value.data["errors"]
    return errors


def test_a_numeric_string_becomes_an_int_by_position_and_by_name() -> None:
    args, _ = convert(hinted, ["21", {"qty": "3"}])
    assert args[0] == 21
    _, kwargs = convert(hinted, {"n": "21", "item": {"qty": 3}})
    assert kwargs["n"] == 21


def test_params_arrive_as_the_hinted_types() -> None:
    args, kwargs = convert(
        hinted,
        {
            "n": 1,
            "item": {"qty": "2", "when": "2024-05-01T10:00:00Z"},
            "color": "blue",
            "model": {"n": "5", "tags": ["x"]},
            "point": {"x": "1", "y": 2},
            "mode": "b",
            "at": "2024-05-01T10:00:00+02:00",
        },
    )
    assert kwargs["item"] == Item(
        qty=2, when=datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC)
    )
    assert kwargs["color"] is Color.BLUE
    assert kwargs["model"] == Model(n=5, tags=["x"])
    assert kwargs["point"] == {"x": 1, "y": 2}
    assert kwargs["mode"] == "b"
    assert kwargs["at"].utcoffset() == datetime.timedelta(hours=2)


def test_optional_params_take_null_and_defaults_are_filled() -> None:
    _, kwargs = convert(hinted, {"n": 1, "item": {"qty": 1}, "model": None})
    assert kwargs["model"] is None
    assert kwargs["color"] is Color.RED


def test_wrong_values_are_listed_with_json_pointers_of_named_params() -> None:
    errors = errors_of(hinted, {"n": "x", "item": {"qty": "lots"}, "color": "green", "mode": 3})
    assert [error["path"] for error in errors] == ["/color", "/item/qty", "/mode", "/n"]
    assert all(error["message"] for error in errors)


def test_wrong_values_are_listed_with_json_pointers_of_positional_params() -> None:
    errors = errors_of(hinted, ["1", {"qty": "lots"}])
    assert errors == [
        {
            "path": "/1/qty",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]


def test_missing_and_unexpected_params_are_invalid_params() -> None:
    assert errors_of(hinted, {"n": 1, "extra": 2}) == [
        {"path": "/extra", "message": "Unexpected keyword argument"},
        {"path": "/item", "message": "Missing required argument"},
    ]
    assert errors_of(hinted, None)[0]["path"] == "/item"


def test_an_explicit_params_schema_wins_over_the_hints() -> None:
    assert params.hint_validator(with_schema) is None
    assert params.schema_validator(with_schema) is not None


def test_a_method_without_hints_gets_no_validator() -> None:
    assert params.hint_validator(plain) is None


def test_hints_pydantic_does_not_know_leave_the_method_unconverted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.params"):
        assert params.hint_validator(unknown_hint) is None
    assert "not validated from its type hints" in caplog.text


def test_results_of_hinted_types_are_encoded_as_json() -> None:
    value = [
        Model(n=1),
        Item(qty=1, when=datetime.datetime(2024, 1, 2, 3, 4, 5)),
        Color.BLUE,
        datetime.date(2024, 1, 2),
    ]
    assert encode(value) == (
        b'[{"n":1,"tags":[]},{"qty":1,"when":"2024-01-02T03:04:05"},"blue","2024-01-02"]'
    )


def test_openrpc_schemas_come_from_pydantic() -> None:
    components: dict[str, Any] = {}
    method = describe_method("hinted", hinted, components)
    schemas = {p["name"]: p["schema"] for p in method["params"]}
    assert schemas["n"] == pydantic.TypeAdapter(int).json_schema()
    assert schemas["item"] == {"$ref": "#/components/schemas/Item"}
    assert components["Item"]["properties"]["qty"] == {"title": "Qty", "type": "integer"}
    assert schemas["mode"] == {"enum": ["a", "b"], "type": "string", "default": "a"}
    assert {"$ref": "#/components/schemas/Model"} in schemas["model"]["anyOf"]


def test_openrpc_keeps_the_explicit_schema_of_a_hinted_method() -> None:
    method = describe_method("with_schema", with_schema)
    assert method["params"][0]["schema"] == {"type": "string"}
