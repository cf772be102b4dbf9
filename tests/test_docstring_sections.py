"""Docstrings in the OpenRPC document: ``Args:``, ``Returns:``, ``Raises:`` (Google style and
reST field lists) become param descriptions, the result's description and error objects."""

from __future__ import annotations

from catalog.openrpc import _docstring_sections, describe_method
from wire.errors import JsonRpcError


class OutOfStock(JsonRpcError):
    """The item is sold out (the method's own code)."""

    code = -32010


def buy(item: str, qty: int = 1) -> float:
    """Buy ``qty`` of ``item``.

    Args:
        item: the name of the item,
            as listed.
        qty (int): how many.

    Returns:
        the price paid.

    Raises:
        OutOfStock: none left.
        ValueError: a bad quantity.
    """
    return 1.0


def test_google_sections_become_descriptions_and_errors() -> None:
    method = describe_method("buy", buy)
    assert method["summary"] == "Buy ``qty`` of ``item``."
    described = {param["name"]: param.get("description") for param in method["params"]}
    assert described == {"item": "the name of the item, as listed.", "qty": "how many."}
    assert method["result"]["description"] == "the price paid."
    assert method["errors"] == [
        {"code": -32010, "message": "none left.", "data": {"type": "OutOfStock"}},
        {"code": -32000, "message": "a bad quantity.", "data": {"type": "ValueError"}},
    ]


def test_rest_field_lists() -> None:
    sections = _docstring_sections(
        "Add.\n\n:param int a: the first\n    number\n:param b: the second\n"
        ":returns: the sum\n:raises TypeError: not numbers"
    )
    assert sections == {
        "params": {"a": "the first number", "b": "the second"},
        "returns": "the sum",
        "raises": [("TypeError", "not numbers")],
    }


def test_a_plain_docstring_has_no_sections() -> None:
    def echo(txt: str) -> str:
        """Return ``txt`` unchanged.

        Args are not a section here: this is prose.
        """
        return txt

    method = describe_method("echo", echo)
    assert "errors" not in method and "description" not in method["params"][0]
    assert "description" not in method["result"]
