"""kit.http passes the running call's W3C trace context on (a local server records headers)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from executor.context import call_context
from kit.http import AsyncClient, Client
from tests.kit.conftest import ScriptedServer

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def headers_seen(kind: str, url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """GET ``url`` (the ``/echo`` script) with a sync or async client; the headers it saw."""
    if kind == "sync":
        with Client() as client:
            response = client.get(url, headers=headers)
    else:

        async def run() -> Any:
            async with AsyncClient() as client:
                return await client.get(url, headers=headers)

        response = asyncio.run(run())
    assert response.status_code == 200
    seen: dict[str, str] = {name.lower(): value for name, value in response.json().items()}
    return seen


def in_call(context: dict[str, Any] | None, kind: str, url: str, **kwargs: Any) -> dict[str, str]:
    """:func:`headers_seen` as a method would run it: inside a call with ``context``."""

    def run() -> dict[str, str]:
        call_context.set(context)
        return headers_seen(kind, url, **kwargs)

    return contextvars.copy_context().run(run)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_traced_call_passes_traceparent_and_tracestate_on(
    http_server: ScriptedServer, kind: str
) -> None:
    context = {"request_id": "r", "traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    seen = in_call(context, kind, http_server.url("/echo"))
    assert seen["traceparent"] == TRACEPARENT
    assert seen["tracestate"] == "vendor=1"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_untraced_call_sends_no_trace_headers(http_server: ScriptedServer, kind: str) -> None:
    seen = in_call({"request_id": "r"}, kind, http_server.url("/echo"))
    assert "traceparent" not in seen and "tracestate" not in seen


def test_a_traceparent_the_request_sets_itself_is_kept(http_server: ScriptedServer) -> None:
    own = "00-11111111111111111111111111111111-2222222222222222-01"
    context = {"traceparent": TRACEPARENT}
    seen = in_call(context, "sync", http_server.url("/echo"), headers={"traceparent": own})
    assert seen["traceparent"] == own
