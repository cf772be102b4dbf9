"""The OpenRPC 1.x document of every reachable method of the methods package.

Runs in worker processes only (it looks at the imported user code); the worker answers
``rpc.discover`` with it (see :mod:`catalog.rpc_methods`). The walk follows the
rules of :mod:`executor.resolve` and then asks :func:`~executor.resolve.resolve` itself
about every candidate name, so the document lists exactly what a caller can reach:

* every module ``methods`` / ``methods.*`` already imported (the worker imports them all at
  start), no segment starting with ``_``;
* its functions defined inside the package; its classes defined inside the package, and
  their classmethods / staticmethods (nested classes too).

Per method (OpenRPC "Method Object", https://spec.open-rpc.org/#method-object):

* ``summary``: the first paragraph of the docstring; ``description``: the whole docstring;
* ``params``: one Content Descriptor per parameter, with a JSON Schema taken from the
  method's ``@params_schema`` (per parameter: ``properties`` of an object schema, or
  ``prefixItems`` / ``items`` of an array schema) or else from its type hints, by pydantic
  (``TypeAdapter(hint).json_schema()``: the library that validates those params in the
  worker, :func:`executor.params.hint_validator`, so the document shows what is enforced);
  the whole ``@params_schema`` schema is kept as the extension ``x-params-schema``;
* ``paramStructure``: ``by-name`` (keyword-only params, ``**kwargs``, an object schema),
  ``by-position`` (positional-only params, ``*args``, an array schema) or ``either``;
* ``result``: schema from the return annotation (pydantic, serialization mode), ``{}``
  (anything) when there is none.

Models, dataclasses, TypedDicts and enums named in hints are described once in
``components.schemas`` and referred to as ``{"$ref": "#/components/schemas/<Name>"}``. Hints
pydantic cannot describe (a class it does not know) fall back to :func:`schema_for_hint`,
which is also what such a method's params get: no conversion, the schema only informs.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import decimal
import enum
import inspect
import logging
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from executor.params import SCHEMA_ATTRIBUTE, has_hints
from executor.resolve import PACKAGE, is_inside_package, resolve
from wire.errors import JsonRpcError

__all__ = [
    "META_SCHEMA_URL",
    "OPENRPC_VERSION",
    "build_document",
    "describe_method",
    "schema_for_hint",
    "REF_TEMPLATE",
]

logger = logging.getLogger(__name__)

#: Where a ``$ref`` of a hint's schema points: the document's ``components.schemas``.
REF_TEMPLATE = "#/components/schemas/{model}"

#: Version of the OpenRPC specification the document follows.
OPENRPC_VERSION = "1.3.2"

#: The meta-schema a client can validate the document against (result of rpc.discover).
META_SCHEMA_URL = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"

_MAX_CLASS_DEPTH = 8

_SIMPLE_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    bytes: {"type": "string"},
    decimal.Decimal: {"type": "string"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    datetime.timedelta: {"type": "number", "description": "seconds"},
    list: {"type": "array"},
    tuple: {"type": "array"},
    set: {"type": "array", "uniqueItems": True},
    frozenset: {"type": "array", "uniqueItems": True},
    dict: {"type": "object"},
}


def schema_for_hint(hint: Any) -> dict[str, Any]:
    """Translate a Python type hint into a JSON Schema (draft 2020-12 keywords).

    Args:
        hint: an annotation, already evaluated (``int``, ``list[str]``, ``str | None``...).

    Returns:
        A JSON Schema dict. ``str`` -> ``{"type": "string"}``, ``int`` -> integer, ``float``
        -> number, ``bool`` -> boolean, ``None`` -> null, ``list[X]`` / ``set[X]`` -> array of
        X, ``tuple[X, Y]`` -> array with ``prefixItems``, ``dict[str, X]`` -> object with
        ``additionalProperties`` X, ``X | Y`` / ``Optional`` -> ``anyOf``, ``Literal[...]`` ->
        ``enum``, an Enum class -> ``enum`` of its values, a dataclass or TypedDict -> object
        of its fields, datetime types -> string with ``format`` (as the encoder sends them).
        Anything unknown (``Any``, a custom class) -> ``{}``: any value. Never raises.
    """
    if hint is inspect.Parameter.empty or hint is typing.Any or hint is object:
        return {}
    if hint is None:
        return {"type": "null"}
    simple = _SIMPLE_TYPES.get(hint)
    if simple is not None:
        return dict(simple)
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin is typing.Annotated:
        return schema_for_hint(arguments[0])
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [schema_for_hint(argument) for argument in arguments]}
    if origin is typing.Literal:
        return {"enum": list(arguments)}
    if origin in (
        list,
        set,
        frozenset,
        collections.abc.Sequence,
        collections.abc.Iterable,
        collections.abc.Set,
        collections.abc.MutableSequence,
    ):
        schema: dict[str, Any] = {"type": "array"}
        if arguments:
            schema["items"] = schema_for_hint(arguments[0])
        if origin in (set, frozenset, collections.abc.Set):
            schema["uniqueItems"] = True
        return schema
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return {"type": "array", "items": schema_for_hint(arguments[0])}
        return {
            "type": "array",
            "prefixItems": [schema_for_hint(a) for a in arguments],
            "minItems": len(arguments),
            "maxItems": len(arguments),
        }
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        schema = {"type": "object"}
        if len(arguments) == 2:
            schema["additionalProperties"] = schema_for_hint(arguments[1])
        return schema
    if inspect.isclass(hint):
        if issubclass(hint, enum.Enum):
            return {"enum": [member.value for member in hint]}
        if dataclasses.is_dataclass(hint):
            return _object_schema(
                hint,
                {
                    field.name
                    for field in dataclasses.fields(hint)
                    if field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                },
            )
        if typing.is_typeddict(hint):
            return _object_schema(hint, set(getattr(hint, "__required_keys__", ())))
        for base, schema in _SIMPLE_TYPES.items():  # a subclass of a simple type, e.g. of str
            if base is not type(None) and issubclass(hint, base):
                return dict(schema)
    return {}


def _object_schema(cls: type, required: set[str]) -> dict[str, Any]:
    hints = _type_hints(cls)
    schema: dict[str, Any] = {
        "type": "object",
        "title": cls.__name__,
        "properties": {name: schema_for_hint(hint) for name, hint in hints.items()},
    }
    if required:
        schema["required"] = sorted(required)
    return schema


def _type_hints(target: Any) -> dict[str, Any]:
    """Evaluated annotations of a function or class; unresolvable ones are left out."""
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # a forward reference that does not resolve: use what is not a string
        annotations = getattr(target, "__annotations__", None) or {}
        return {name: hint for name, hint in annotations.items() if not isinstance(hint, str)}


def _docstring_parts(function: Callable[..., Any]) -> dict[str, str]:
    doc = inspect.getdoc(function)
    if not doc:
        return {}
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    return {"summary": summary, "description": doc}


#: Google-style section headers (``Args:`` ...), by the part of the method they describe.
_SECTIONS = {
    "args": "params",
    "arguments": "params",
    "parameters": "params",
    "params": "params",
    "keyword args": "params",
    "keyword arguments": "params",
    "returns": "returns",
    "return": "returns",
    "yields": "returns",
    "raises": "raises",
}
_SECTION_HEADER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]*):\s*$")
#: ``name (type): text`` or ``name: text``, an entry of an ``Args:`` or ``Raises:`` section.
_ENTRY = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_][\w.]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")
#: reST field lists: ``:param int a: text``, ``:returns: text``, ``:raises ValueError: text``.
_FIELD = re.compile(r"^:(?P<kind>\w+)(?:\s+(?P<arguments>[^:]+))?:\s*(?P<text>.*)$")


def _docstring_sections(doc: str) -> dict[str, Any]:
    """The ``Args:``, ``Returns:`` and ``Raises:`` parts of a docstring (Google style or reST
    field lists).

    Args:
        doc: a cleaned docstring (:func:`inspect.getdoc`).

    Returns:
        ``{"params": {name: text}, "returns": text or None, "raises": [(exception name,
        text)]}``; texts have their lines joined by spaces. Nothing found: empty parts.

    Example: ``"Add.\n\nArgs:\n    a (int): first.\nReturns:\n    the sum."`` gives
    ``{"params": {"a": "first."}, "returns": "the sum.", "raises": []}``.
    """
    params: dict[str, list[str]] = {}
    returns: list[str] = []
    raises: list[tuple[str, list[str]]] = []
    section: str | None = None  # "params", "returns", "raises" or None (prose)
    current: list[str] | None = None  # the lines of the entry being read
    entry_indent = 0

    def start(kind: str, name: str, text: str) -> list[str]:
        lines = [text] if text else []
        if kind == "params":
            params[name] = lines
        elif kind == "raises":
            raises.append((name, lines))
        else:
            returns.extend(lines)
            return returns
        return lines

    for line in doc.splitlines():
        stripped = line.strip()
        indented = line[:1] in (" ", "\t")
        header = _SECTION_HEADER.match(line)
        if header is not None:
            section = _SECTIONS.get(header.group("name").strip().lower())
            current = None
            continue
        field = None if indented else _FIELD.match(stripped)
        if field is not None:  # :param a: ...  :returns: ...  :raises KeyError: ...
            section = None
            kind = field.group("kind")
            arguments = (field.group("arguments") or "").split()
            text = field.group("text").strip()
            if kind in ("param", "parameter", "arg", "argument", "key", "keyword") and arguments:
                current = start("params", arguments[-1], text)
            elif kind in ("returns", "return", "yields"):
                current = start("returns", "", text)
            elif kind in ("raises", "raise", "except", "exception"):
                current = start("raises", arguments[-1] if arguments else "Exception", text)
            else:  # :type a: ..., :rtype: ...: not shown
                current = None
            continue
        if not stripped:
            continue
        if not indented:  # prose at column 0 ends a section and a field
            section = current = None
            continue
        indent = len(line) - len(line.lstrip())
        found = _ENTRY.match(stripped) if section in ("params", "raises") else None
        if (
            section is not None
            and found is not None
            and (current is None or indent <= entry_indent)
        ):
            current = start(section, found.group("name"), found.group("text").strip())
            entry_indent = indent
        elif section == "returns" and current is None:
            current = start("returns", "", stripped)
        elif current is not None:
            current.append(stripped)
    return {
        "params": {name: " ".join(lines) for name, lines in params.items()},
        "returns": " ".join(returns) or None,
        "raises": [(name, " ".join(lines)) for name, lines in raises],
    }


def _add_docstring_sections(method: dict[str, Any], function: Callable[..., Any]) -> None:
    """Put the docstring's ``Args:`` texts into the params' ``description``, its ``Returns:``
    into the result's, and its ``Raises:`` into the method's ``errors`` (OpenRPC Error
    Objects: the code of a :class:`~wire.errors.JsonRpcError` subclass the method's module
    knows by that name, else -32000 as the server answers an exception; ``data.type`` the
    exception's name)."""
    doc = inspect.getdoc(function)
    if not doc:
        return
    sections = _docstring_sections(doc)
    for descriptor in method.get("params", []):
        text = sections["params"].get(descriptor["name"])
        if text:
            descriptor["description"] = text
    if sections["returns"] and isinstance(method.get("result"), dict):
        method["result"]["description"] = sections["returns"]
    names = getattr(getattr(function, "__func__", function), "__globals__", {})
    errors = []
    for name, text in sections["raises"]:
        exception = names.get(name.rsplit(".", 1)[-1])
        code = getattr(exception, "code", None)
        if not (inspect.isclass(exception) and issubclass(exception, JsonRpcError)) or not (
            isinstance(code, int)
        ):
            code = -32000
        errors.append({"code": code, "message": text or name, "data": {"type": name}})
    if errors:
        method["errors"] = errors


def _jsonable_default(value: Any) -> tuple[bool, Any]:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return True, list(value)
    return False, None


def _param_structure(parameters: list[inspect.Parameter], schema: Any) -> str:
    kinds = {parameter.kind for parameter in parameters}
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            return "by-name"
        if schema.get("type") == "array":
            return "by-position"
    if kinds & {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}:
        return "by-name"
    if kinds & {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL}:
        return "by-position"
    return "either"


def _schema_of_param(
    schema: Any, parameter: inspect.Parameter, position: int
) -> dict[str, Any] | None:
    """The part of a whole-params schema that applies to one parameter, or None."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        found = (schema.get("properties") or {}).get(parameter.name)
        return dict(found) if isinstance(found, dict) else None
    if schema.get("type") == "array":
        items = schema.get("prefixItems")
        if isinstance(items, list):
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                rest = schema.get("items")
                return {"type": "array", "items": rest} if isinstance(rest, dict) else None
            return (
                dict(items[position])
                if position < len(items) and isinstance(items[position], dict)
                else None
            )
        if isinstance(schema.get("items"), dict):
            item = dict(schema["items"])
            return (
                {"type": "array", "items": item}
                if parameter.kind is inspect.Parameter.VAR_POSITIONAL
                else item
            )
    return None


def _required_by_schema(schema: Any, parameter: inspect.Parameter, position: int) -> bool | None:
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("required"), list):
        return parameter.name in list(schema["required"])
    if schema.get("type") == "array" and isinstance(schema.get("minItems"), int):
        return position < int(schema["minItems"])
    return None


def _pydantic_schemas(
    name: str, hints: dict[str, Any], parameters: list[inspect.Parameter], with_params: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Schemas of the params (when ``with_params``) and of ``"return"`` from pydantic.

    Returns:
        ``({param name or "return": schema}, {component name: schema})``; a hint pydantic
        cannot describe is left out of the first mapping (the caller falls back).
    """
    keys: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = []
    wanted = [p.name for p in parameters] if with_params else []
    if "return" in hints:
        wanted.append("return")
    for key in wanted:
        hint = hints.get(key, Any)
        parameter = next((p for p in parameters if p.name == key), None)
        if parameter is not None and parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            hint = tuple[hint, ...]  # type: ignore[valid-type]
        elif parameter is not None and parameter.kind is inspect.Parameter.VAR_KEYWORD:
            hint = dict[str, hint]  # type: ignore[valid-type]
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(hint)
            mode: JsonSchemaMode = "serialization" if key == "return" else "validation"
            TypeAdapter.json_schemas([(key, mode, adapter)])
        except Exception as exc:  # pydantic cannot describe it: schema_for_hint will
            logger.debug("no pydantic schema for %s of %s: %s", key, name, exc)
            continue
        keys.append((key, mode, adapter))
    if not keys:
        return {}, {}
    by_key, definitions = TypeAdapter.json_schemas(keys, ref_template=REF_TEMPLATE)
    schemas = {key: by_key[(key, mode)] for key, mode, _ in keys}
    return schemas, dict(definitions.get("$defs", {}))


def describe_method(
    name: str, function: Callable[..., Any], components: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build the OpenRPC Method Object of one method.

    Args:
        name: the JSON-RPC method name, e.g. ``"greetings.greet"``.
        function: the callable :func:`~executor.resolve.resolve` returns for it.
        components: where the schemas that hints refer to are added (``components.schemas``
            of the document; a name already there with another schema is kept and logged).

    Returns:
        ``{"name", "summary"?, "description"?, "paramStructure", "params": [Content
        Descriptor...], "result": Content Descriptor, "x-params-schema"?}``. A parameter
        ``*args`` or ``**kwargs`` is described with ``"x-variadic": true``.
    """
    method: dict[str, Any] = {"name": name}
    method.update(_docstring_parts(function))
    schema = getattr(function, SCHEMA_ATTRIBUTE, None)
    if schema is None:  # the decorator may sit on the function inside a classmethod
        schema = getattr(getattr(function, "__func__", None), SCHEMA_ATTRIBUTE, None)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    parameters = list(signature.parameters.values()) if signature is not None else []
    hints = _type_hints(getattr(function, "__func__", function))
    pydantic_schemas, definitions = _pydantic_schemas(
        name, hints, parameters, with_params=has_hints(function)
    )
    if components is not None:
        for component, component_schema in definitions.items():
            if components.setdefault(component, component_schema) != component_schema:
                logger.warning("two schemas named %s in the OpenRPC document", component)
    descriptors = []
    for position, parameter in enumerate(parameters):
        param_schema = _schema_of_param(schema, parameter, position)
        if param_schema is None and parameter.name in pydantic_schemas:
            param_schema = dict(pydantic_schemas[parameter.name])
        if param_schema is None:
            param_schema = schema_for_hint(hints.get(parameter.name, inspect.Parameter.empty))
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                param_schema = (
                    {"type": "array", "items": param_schema} if param_schema else {"type": "array"}
                )
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                param_schema = (
                    {"type": "object", "additionalProperties": param_schema}
                    if param_schema
                    else {"type": "object"}
                )
        if parameter.default is not inspect.Parameter.empty:
            ok, default = _jsonable_default(parameter.default)
            if ok and "default" not in param_schema:
                param_schema = dict(param_schema, default=default)
        variadic = parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        required = _required_by_schema(schema, parameter, position)
        if required is None:
            required = parameter.default is inspect.Parameter.empty and not variadic
        descriptor: dict[str, Any] = {
            "name": parameter.name,
            "required": required,
            "schema": param_schema,
        }
        if variadic:
            descriptor["x-variadic"] = True
        descriptors.append(descriptor)
    method["paramStructure"] = _param_structure(parameters, schema)
    method["params"] = descriptors
    result_hint = hints.get("return", inspect.Parameter.empty)
    result_schema = pydantic_schemas.get("return")
    if result_schema is None:
        result_schema = schema_for_hint(result_hint)
    method["result"] = {"name": "result", "schema": result_schema}
    if schema is not None:
        method["x-params-schema"] = schema
    _add_docstring_sections(method, function)
    return method


def _class_candidates(prefix: str, cls: type, depth: int, seen: set[int]) -> list[str]:
    if depth > _MAX_CLASS_DEPTH or id(cls) in seen:
        return []
    seen = seen | {id(cls)}
    names = []
    for attribute, static in vars(cls).items():
        if attribute.startswith("_"):
            continue
        if isinstance(static, (classmethod, staticmethod)):
            names.append(prefix + attribute)
        elif inspect.isclass(static) and is_inside_package(static.__module__):
            names.extend(_class_candidates(prefix + attribute + ".", static, depth + 1, seen))
    return names


def _candidates() -> list[str]:
    """Every name that may be a method, from the imported modules of the package."""
    names: list[str] = []
    for module_name, module in sorted(sys.modules.items()):
        if not is_inside_package(module_name) or not isinstance(module, types.ModuleType):
            continue
        parts = module_name.split(".")[1:]
        if any(part.startswith("_") for part in parts):
            continue
        prefix = "".join(part + "." for part in parts)
        for attribute, value in list(vars(module).items()):
            if attribute.startswith("_"):
                continue
            if inspect.isfunction(value) and is_inside_package(value.__module__):
                names.append(prefix + attribute)
            elif inspect.isclass(value) and is_inside_package(value.__module__):
                names.extend(_class_candidates(prefix + attribute + ".", value, 0, set()))
    return names


def _discover_method() -> dict[str, Any]:
    return {
        "name": "rpc.discover",
        "summary": "Return the OpenRPC document of this server.",
        "description": "The OpenRPC document of every reachable method (OpenRPC 1.x, "
        "service discovery method). The same document is served at GET /openrpc.json.",
        "paramStructure": "either",
        "params": [],
        "result": {"name": "OpenRPC document", "schema": {"$ref": META_SCHEMA_URL}},
    }


def build_document(title: str = "sbusr", version: str = "0") -> dict[str, Any]:
    """Build the OpenRPC document of every reachable method of the imported package.

    Args:
        title: ``info.title``.
        version: ``info.version`` (the server's version).

    Returns:
        ``{"openrpc": "1.3.2", "info": {"title", "version", "description"?}, "methods":
        [Method Object...], "components"?: {"schemas": {...}}}``, methods sorted by name,
        ``rpc.discover`` among them.
    """
    methods: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    for name in _candidates():
        if name in methods:
            continue
        try:
            function = resolve(name)
        except JsonRpcError:
            continue
        methods[name] = describe_method(name, function, components)
    methods["rpc.discover"] = _discover_method()
    info: dict[str, Any] = {"title": title, "version": version}
    package = sys.modules.get(PACKAGE)
    if package is not None and inspect.getdoc(package):
        info["description"] = inspect.getdoc(package)
    document: dict[str, Any] = {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": [methods[name] for name in sorted(methods)],
    }
    if components:
        document["components"] = {"schemas": dict(sorted(components.items()))}
    return document
