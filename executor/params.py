"""Params of a call: the method's JSON Schema and the binding to its signature.

A method declares a JSON Schema for its params with :func:`params_schema`; the schema
applies to ``params`` exactly as sent (an array for positional params, an object for
named ones). Params that fail the schema, or that do not bind to the signature, are
answered -32602 (design.md, error table) with the reasons in ``error.data["errors"]``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jsonschema

from wire.errors import InvalidParams
from wire.schema import error_list

__all__ = [
    "params_schema",
    "SCHEMA_ATTRIBUTE",
    "schema_validator",
    "validate",
    "split",
    "check_binding",
    "binding_failure",
]

SCHEMA_ATTRIBUTE = "__sbusr_params_schema__"
_VALIDATOR_ATTRIBUTE = "__sbusr_params_validator__"

Function = TypeVar("Function", bound=Callable[..., Any])


def params_schema(schema: dict[str, Any]) -> Callable[[Function], Function]:
    """Declare the JSON Schema (draft 2020-12) that a method's params must satisfy.

    Args:
        schema: a JSON Schema object, checked against its meta-schema right away.

    Returns:
        A decorator that stores the schema on the function and returns it unchanged.
        Put it under ``@classmethod`` / ``@staticmethod`` when both are used.

    Raises:
        jsonschema.SchemaError: the schema itself is invalid (at import of the module).

    Example::

        @params_schema({"type": "array", "prefixItems": [{"type": "number"}] * 2})
        def add(a, b):
            return a + b
    """
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def decorate(function: Function) -> Function:
        setattr(function, SCHEMA_ATTRIBUTE, schema)
        setattr(function, _VALIDATOR_ATTRIBUTE, validator)
        return function

    return decorate


def schema_validator(function: Callable[..., Any]) -> Any:
    """Return the compiled validator of the method's :func:`params_schema`, or None."""
    return getattr(function, _VALIDATOR_ATTRIBUTE, None)


def validate(validator: Any, params: Any) -> None:
    """Check params (None, a list or a dict) against a method's schema validator.

    Raises:
        InvalidParams: data ``{"errors": [{"path": "/n", "message": "..."}, ...]}``.
    """
    errors = error_list(validator.iter_errors([] if params is None else params))
    if errors:
        raise InvalidParams(data={"errors": errors})


def split(params: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn params (None, a list or a dict) into ``(args, kwargs)`` for the call."""
    if params is None:
        return (), {}
    if isinstance(params, list):
        return tuple(params), {}
    return (), params


@functools.lru_cache(maxsize=4096)
def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        return None


def check_binding(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Check that ``function(*args, **kwargs)`` binds to its signature, without calling it.

    Raises:
        InvalidParams: data ``{"errors": [{"path": "/", "message": "missing a required
            argument: 'b'"}]}``.
    """
    signature = _signature(function)
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidParams(data={"errors": [{"path": "/", "message": str(exc)}]}) from None


def binding_failure(error: TypeError) -> InvalidParams | None:
    """Tell whether a TypeError came from calling a function with arguments it does not take.

    Python raises such an error before the called function's frame starts, so the traceback
    holds only the caller's frame; an error raised inside the function has more frames.
    Valid for plain functions (not for wrappers such as ``functools.wraps`` decorators, whose
    inner call fails one frame deeper: use :func:`check_binding` for those).

    Returns:
        The InvalidParams to answer with, or None when the method itself raised the error.
    """
    traceback = error.__traceback__
    if traceback is not None and traceback.tb_next is None:
        return InvalidParams(data={"errors": [{"path": "/", "message": str(error)}]})
    return None
