"""rpc.discover and GET /openrpc.json: an OpenRPC 1.x document of every reachable method."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from catalog.openrpc import describe_method, schema_for_hint
from executor.params import params_schema
from tests.support import ServerProcess

META_SCHEMA = json.loads(
    (Path(__file__).parent / "fixtures" / "openrpc_meta_schema.json").read_text()
)


def openrpc_validator() -> jsonschema.Draft7Validator:
    """The OpenRPC meta-schema, its reference to the draft-07 meta-schema resolved offline."""
    draft7 = Resource.from_contents(jsonschema.Draft7Validator.META_SCHEMA)
    registry = Registry().with_resource("https://json-schema.org/draft-07/schema", draft7)
    return jsonschema.Draft7Validator(
        META_SCHEMA, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def methods_by_name(document: dict[str, typing.Any]) -> dict[str, dict[str, typing.Any]]:
    return {method["name"]: method for method in document["methods"]}


def test_meta_schema_rejects_a_broken_document() -> None:
    errors = list(
        openrpc_validator().iter_errors(
            {"openrpc": "1.3.2", "info": {"title": "x", "version": "1"}, "methods": [{"name": "m"}]}
        )
    )
    assert errors  # a method without params and result is refused: the validator does validate


def test_rpc_discover_is_a_valid_openrpc_document(shared_server: ServerProcess) -> None:
    response = shared_server.call("rpc.discover")
    document = response["result"]
    openrpc_validator().validate(document)
    assert document["openrpc"].startswith("1.")
    assert document["info"]["title"] == "sbusr"


def test_openrpc_json_serves_the_same_document(shared_server: ServerProcess) -> None:
    response = shared_server.http.get("/openrpc.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == shared_server.call("rpc.discover")["result"]


def test_document_lists_exactly_the_reachable_methods(shared_server: ServerProcess) -> None:
    names = set(methods_by_name(shared_server.call("rpc.discover")["result"]))
    assert {
        "add",
        "echo",
        "plus",
        "greetings.greet",
        "greetings.greet_later",
        "mymodule.MyClass.mymethod",
        "mymodule.MyClass.double",
        "bar.boo.loo.Loo.dec",
        "rpc.discover",
    } <= names
    assert "mymodule.MyClass.not_reachable" not in names  # an instance method
    assert "mymodule.MyClass" not in names  # a class itself
    assert not any(name.startswith("logging.") or name.startswith("time.") for name in names)
    for name in names - {"rpc.discover"}:  # each listed name really resolves
        answer = shared_server.call(name, {"__probe__": 1})
        assert answer.get("error", {}).get("code") != -32601, name


def test_document_describes_params_docstrings_and_schema(shared_server: ServerProcess) -> None:
    methods = methods_by_name(shared_server.call("rpc.discover")["result"])
    echo = methods["echo"]
    assert echo["summary"] == "Return ``txt`` unchanged."
    assert [p["name"] for p in echo["params"]] == ["txt"]
    assert echo["params"][0]["required"] is True
    assert echo["paramStructure"] == "either"
    greet = methods["greetings.greet"]
    assert greet["paramStructure"] == "by-name"
    assert greet["params"][0] == {
        "name": "name",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    assert greet["params"][1]["required"] is False
    assert greet["x-params-schema"]["additionalProperties"] is False
    plus = methods["plus"]
    assert plus["paramStructure"] == "by-position"
    assert plus["params"] == [
        {
            "name": "args",
            "required": False,
            "schema": {"type": "array", "items": {}},
            "x-variadic": True,
        }
    ]


def test_method_added_and_reloaded_appears(server: ServerProcess, methods_dir: Path) -> None:
    before = methods_by_name(server.call("rpc.discover")["result"])
    assert "extra.triple" not in before
    (methods_dir / "extra.py").write_text(
        'def triple(x: int) -> int:\n    """Return ``3 * x``."""\n    return 3 * x\n'
    )
    assert server.http.get("/sys/reset").status_code == 200
    after = methods_by_name(server.call("rpc.discover")["result"])
    triple = after["extra.triple"]
    assert triple["summary"] == "Return ``3 * x``."
    assert triple["params"] == [{"name": "x", "required": True, "schema": {"type": "integer"}}]
    assert triple["result"]["schema"] == {"type": "integer"}
    openrpc_validator().validate(server.http.get("/openrpc.json").json())
    assert "extra.triple" in methods_by_name(server.http.get("/openrpc.json").json())


def test_broken_module_keeps_the_old_document(server: ServerProcess, methods_dir: Path) -> None:
    before = server.call("rpc.discover")["result"]
    (methods_dir / "broken.py").write_text("def oops(:\n")
    assert server.http.get("/sys/reset").status_code == 500
    assert server.call("rpc.discover")["result"] == before


@pytest.mark.parametrize(
    "hint, schema",
    [
        (int, {"type": "integer"}),
        (str | None, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
        (list[float], {"type": "array", "items": {"type": "number"}}),
        (dict[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (typing.Literal["a", "b"], {"enum": ["a", "b"]}),
        (typing.Any, {}),
        (object, {}),
    ],
)
def test_schema_for_hint(hint: typing.Any, schema: dict[str, typing.Any]) -> None:
    assert schema_for_hint(hint) == schema


def test_describe_method_with_hints_defaults_and_keyword_only() -> None:
    def find(query: str, *, limit: int = 10) -> list[str]:
        """Find things.

        Longer text.
        """
        return []

    method = describe_method("find", find)
    assert method["summary"] == "Find things."
    assert method["description"] == "Find things.\n\nLonger text."
    assert method["paramStructure"] == "by-name"
    assert method["params"] == [
        {"name": "query", "required": True, "schema": {"type": "string"}},
        {"name": "limit", "required": False, "schema": {"type": "integer", "default": 10}},
    ]
    assert method["result"] == {
        "name": "result",
        "schema": {"type": "array", "items": {"type": "string"}},
    }


def test_describe_method_with_a_positional_schema() -> None:
    @params_schema(
        {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "minItems": 2}
    )
    def add(a: float, b: float) -> float:
        return a + b

    method = describe_method("add", add)
    assert method["paramStructure"] == "by-position"
    assert [(p["name"], p["required"], p["schema"]) for p in method["params"]] == [
        ("a", True, {"type": "number"}),
        ("b", True, {"type": "number"}),
    ]
