"""The FastAPI side of bench/io_bench.py and bench/http_bench.py.

    uvicorn bench.fastapi_app:app --loop uvloop --http httptools --no-access-log

For io_bench, the same two 100 ms waits as sbusr's bench methods: ``POST /async`` awaits
``asyncio.sleep``; ``POST /blocking`` is a plain ``def`` (FastAPI runs it in its thread pool)
that calls ``time.sleep``. Both read the JSON-RPC request of the body and answer a JSON-RPC
response, like sbusr. For http_bench, ``POST /health``: a bare endpoint answering a constant
JSON body, the "hello" users of FastAPI know.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Body, FastAPI

WAIT_S = 0.1

app = FastAPI()


@app.post("/async")
async def wait_async(request: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    await asyncio.sleep(WAIT_S)
    return {"jsonrpc": "2.0", "result": "ok", "id": request.get("id")}


@app.post("/blocking")
def wait_blocking(request: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    time.sleep(WAIT_S)
    return {"jsonrpc": "2.0", "result": "ok", "id": request.get("id")}


@app.post("/health")
async def health() -> dict[str, str]:
    """The anchor of bench/http_bench.py: a bare endpoint answering a constant JSON body."""
    return {"status": "ok"}
