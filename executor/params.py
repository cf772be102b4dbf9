"""Params of a call: the method's JSON Schema and the binding to its signature.

A method declares a JSON Schema for its params with :func:`params_schema`; the schema
applies to ``params`` exactly as sent (an array for positional params, an object for
named ones). Params that fail the schema, or that do not bind to the signature, are
answered -32602 (design.md, error table) with the reasons in ``error.data["errors"]``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

import jsonschema

from executor.errors import InvalidParams

__all__ = ["params_schema", "SCHEMA_ATTRIBUTE", "prepare_arguments"]

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
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def decorate(function: Function) -> Function:
        setattr(function, SCHEMA_ATTRIBUTE, schema)
        setattr(function, _VALIDATOR_ATTRIBUTE, validator)
        return function

    return decorate


def _schema_errors(validator: Any, params: Any) -> list[dict[str, str]]:
    errors = sorted(validator.iter_errors(params), key=lambda error: list(error.absolute_path))
    return [{"path": "/" + "/".join(str(part) for part in error.absolute_path),
             "message": error.message} for error in errors]


@functools.lru_cache(maxsize=4096)
def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        return None


def prepare_arguments(function: Callable[..., Any], params: Any) -> tuple[tuple, dict]:
    """Check ``params`` against the method and return the ``(args, kwargs)`` to call it with.

    Args:
        function: the resolved method.
        params: the request's params: None (absent), a list (positional) or a dict (named).

    Returns:
        ``(args, kwargs)``: a tuple and a dict.

    Raises:
        InvalidParams: the params fail the method's schema (data ``{"errors": [{"path",
            "message"}, ...]}``) or do not bind to its signature (data ``{"errors":
            [{"path": "/", "message": "missing a required argument: 'b'"}]}``).
    """
    validator = getattr(function, _VALIDATOR_ATTRIBUTE, None)
    if validator is not None:
        errors = _schema_errors(validator, [] if params is None else params)
        if errors:
            raise InvalidParams(data={"errors": errors})
    if params is None:
        args, kwargs = (), {}
    elif isinstance(params, list):
        args, kwargs = tuple(params), {}
    else:
        args, kwargs = (), params
    signature = _signature(function)
    if signature is None:
        return args, kwargs
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidParams(data={"errors": [{"path": "/", "message": str(exc)}]}) from None
    return args, kwargs
