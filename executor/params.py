"""Params of a call: the method's JSON Schema and the binding to its signature.

A method declares a JSON Schema for its params with :func:`params_schema`; the schema
applies to ``params`` exactly as sent (an array for positional params, an object for
named ones). Params that fail the schema, or that do not bind to the signature, are
answered -32602 (design.md, error table) with the reasons in ``error.data["errors"]``.

A method without ``@params_schema`` whose parameters carry type hints has its params
validated and converted by pydantic (v2, lax mode, as FastAPI does): ``"21"`` becomes ``21``
for an ``int``, an object becomes the dataclass, ``TypedDict`` or pydantic model of the hint,
an ISO 8601 string a ``datetime``. The validator is built once per method per worker
(:func:`hint_validator`), or once per generation for the functions of the methods modules
(:func:`prepare_hint_validators`); each error is listed with the JSON Pointer of the value in params
as sent (``/0/qty`` for positional params, ``/order/qty`` for named ones). A method with no
parameter hints is called exactly as before.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import jsonschema
from pydantic_core import ArgsKwargs, SchemaValidator, ValidationError

from executor.encoding import readable_errors
from wire.errors import InvalidParams
from wire.schema import error_list, json_pointer

with warnings.catch_warnings():  # the arguments schema is marked experimental in pydantic 2
    warnings.simplefilter("ignore")
    from pydantic.experimental.arguments_schema import generate_arguments_schema

__all__ = [
    "params_schema",
    "SCHEMA_ATTRIBUTE",
    "schema_validator",
    "validate",
    "split",
    "check_binding",
    "binding_failure",
    "invalid_params",
    "has_hints",
    "hint_validator",
    "prepare_hint_validators",
    "convert",
]

logger = logging.getLogger(__name__)

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
        raise invalid_params(errors)


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
        raise invalid_params([{"path": "/", "message": str(exc)}]) from None


def invalid_params(errors: list[dict[str, str]]) -> InvalidParams:
    """The -32602 error of ``errors`` (``[{"path", "message"}, ...]``), texts fit for UTF-8.

    Paths and messages can quote what the caller sent, lone surrogates included; they are
    escaped (:func:`executor.encoding.readable_text`) so that the error stays -32602 instead of
    failing to encode as -32603.
    """
    return InvalidParams(data={"errors": readable_errors(errors)})


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
        return invalid_params([{"path": "/", "message": str(error)}])
    return None


def _target(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function that carries the annotations (a bound classmethod's ``__func__``)."""
    return getattr(function, "__func__", function)


def has_hints(function: Callable[..., Any]) -> bool:
    """Tell whether a method's params are validated from its type hints.

    True when the method has no :func:`params_schema` (an explicit schema wins) and at least
    one of its parameters is annotated (a return annotation alone does not count).
    """
    target = _target(function)
    if getattr(target, SCHEMA_ATTRIBUTE, None) is not None:
        return False
    annotations: dict[str, Any] = getattr(target, "__annotations__", None) or {}
    return any(name != "return" for name in annotations)


@functools.lru_cache(maxsize=4096)
def hint_validator(function: Callable[..., Any]) -> SchemaValidator | None:
    """Build the pydantic validator of a method's params from its type hints (once per
    function: the result is cached).

    Args:
        function: the resolved method (a function or a bound classmethod/staticmethod).

    Returns:
        A validator for :func:`convert`, or None when the method has no parameter hints, has
        a :func:`params_schema`, or has hints pydantic cannot validate (a class it does not
        know, a forward reference that does not resolve: then logged as a warning and the
        method is called without conversion, as before).
    """
    if not has_hints(function):
        return None
    try:
        return SchemaValidator(generate_arguments_schema(function))
    except Exception as exc:  # pydantic refuses the hints: serve the method unconverted
        logger.warning(
            "params of %s are not validated from its type hints: %s",
            getattr(function, "__qualname__", function),
            exc,
        )
        return None


def prepare_hint_validators(functions: Iterable[Callable[..., Any]]) -> int:
    """Build the :func:`hint_validator` of each function now, for later calls to reuse.

    A generation's template (:func:`executor.worker.preload`) does it once for the methods
    package, so that its workers, forks of it, do not each build them at a method's first call.
    They stay in :func:`hint_validator`'s cache for the life of the process (a reload starts
    new processes).

    Args:
        functions: plain functions (anything else is skipped).

    Returns:
        How many were built now (not built before in this process).
    """
    built_before = hint_validator.cache_info().misses
    for function in functions:
        if inspect.isfunction(function):
            hint_validator(function)
    return hint_validator.cache_info().misses - built_before


def convert(validator: SchemaValidator, params: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Validate and convert params (None, a list or a dict) with a :func:`hint_validator`.

    Returns:
        ``(args, kwargs)`` converted to the hinted types, defaults filled in.

    Raises:
        InvalidParams: data ``{"errors": [{"path": "/0", "message": "Input should be a valid
            integer, ..."}, ...]}``, sorted by path, one entry per error (type mismatches,
            missing and unexpected arguments alike).
    """
    if params is None:
        call = ArgsKwargs(())
    elif isinstance(params, list):
        call = ArgsKwargs(tuple(params))
    else:
        call = ArgsKwargs((), params)
    try:
        args, kwargs = validator.validate_python(call)
    except ValidationError as exc:
        errors = [
            {"path": json_pointer(error["loc"] or ()), "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        errors.sort(key=lambda entry: (entry["path"], entry["message"]))
        raise invalid_params(errors) from None
    return args, kwargs
