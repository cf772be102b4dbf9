"""Methods that declare a JSON Schema for their params, and an async method."""

import asyncio
from typing import NoReturn

from kit import JsonRpcError, params_schema


@params_schema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "times": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
)
def greet(name: str, times: int = 1) -> str:
    """Return ``"Hello, <name>!"`` repeated ``times`` times; call with named params."""
    return " ".join([f"Hello, {name}!"] * times)


async def greet_later(name: str, delay_s: float = 0.01) -> str:
    """An ``async def`` method: wait ``delay_s`` seconds, then greet."""
    await asyncio.sleep(delay_s)
    return f"Hello, {name}!"


def refuse(name: str) -> NoReturn:
    """Answer with an error code of our own: 4004 for every name."""
    raise JsonRpcError(4004, f"no greeting for {name}", {"name": name})
