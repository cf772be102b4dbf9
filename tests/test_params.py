"""Unit tests of params binding and JSON Schema validation (executor/params.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from executor import params as params_module
from executor.params import params_schema
from wire.errors import InvalidParams


def prepare_arguments(
    function: Callable[..., Any], params: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """What the worker does before a call: schema, then (args, kwargs), then the binding check."""
    validator = params_module.schema_validator(function)
    if validator is not None:
        params_module.validate(validator, params)
    args, kwargs = params_module.split(params)
    params_module.check_binding(function, args, kwargs)
    return args, kwargs


def two(a: Any, b: Any = 2) -> Any:
    return a + b


def many(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


@params_schema({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
def checked(n: int) -> int:
    return n


@pytest.mark.parametrize(
    "params, expected",
    [
        ([1], ((1,), {})),
        ([1, 3], ((1, 3), {})),
        ({"a": 1}, ((), {"a": 1})),
        ({"b": 5, "a": 1}, ((), {"b": 5, "a": 1})),
    ],
)
def test_params_that_bind(params: Any, expected: Any) -> None:
    assert prepare_arguments(two, params) == expected


@pytest.mark.parametrize(
    "params, message",
    [
        (None, "missing a required argument: 'a'"),
        ([], "missing a required argument: 'a'"),
        ([1, 2, 3], "too many positional arguments"),
        ({"c": 1}, "missing a required argument: 'a'"),
        ({"a": 1, "c": 1}, "got an unexpected keyword argument 'c'"),
    ],
)
def test_params_that_do_not_bind_are_invalid_params(params: Any, message: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        prepare_arguments(two, params)
    assert caught.value.code == -32602
    assert caught.value.data["errors"][0]["message"] == message


def test_variadic_methods_take_anything() -> None:
    assert prepare_arguments(many, [1, 2, 3]) == ((1, 2, 3), {})
    assert prepare_arguments(many, None) == ((), {})


def test_schema_errors_are_listed_with_their_paths() -> None:
    with pytest.raises(InvalidParams) as caught:
        prepare_arguments(checked, {"n": "x"})
    assert caught.value.data["errors"] == [
        {"path": "/n", "message": "'x' is not of type 'integer'"}
    ]


def test_schema_applies_to_params_as_sent() -> None:
    with pytest.raises(InvalidParams) as caught:
        prepare_arguments(checked, [1])
    assert caught.value.data["errors"][0]["message"] == "[1] is not of type 'object'"
    assert prepare_arguments(checked, {"n": 4}) == ((), {"n": 4})


def test_an_invalid_schema_is_refused_at_decoration() -> None:
    with pytest.raises(jsonschema.SchemaError):
        params_schema({"type": "no-such-type"})


def test_prepared_hint_validators_are_reused_and_skip_what_has_none() -> None:
    def typed(qty: int) -> int:
        return qty

    def untyped(qty):  # type: ignore[no-untyped-def]
        return qty

    assert params_module.prepare_hint_validators([typed, untyped, str.upper]) == 2
    validator = params_module.hint_validator(typed)
    assert validator is not None and params_module.hint_validator(typed) is validator
    assert params_module.convert(validator, ["3"]) == ((3,), {})
    assert params_module.hint_validator(untyped) is None
    assert params_module.prepare_hint_validators([typed]) == 0  # built once
