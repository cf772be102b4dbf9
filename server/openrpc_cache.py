"""The OpenRPC document of the pool's current generation, cached (``rpc.discover``).

The document is built by a worker (the server process never imports the user's code) and
cached per pool generation: the first request after a reload (``pool.generation`` changed)
asks a worker again. Concurrent requests for a stale document share one worker call. Both
``rpc.discover`` (a server method of the JSON-RPC core) and ``GET /openrpc.json``
(:mod:`server.http.docs`) read it from here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from server import __version__
from wire.codec import decode_strict
from wire.errors import InternalError, JsonRpcError

__all__ = ["DISCOVER_TIMEOUT_S", "DocumentUnavailable", "OpenRpcCache", "WorkerRunner"]

logger = logging.getLogger(__name__)

#: Time limit of the worker call that builds the document, seconds.
DISCOVER_TIMEOUT_S = 30.0


class WorkerRunner(Protocol):
    """What the cache needs of the process pool: its generation, and one call on a worker."""

    @property
    def generation(self) -> int:
        """The number of the generation of workers now serving."""
        ...

    async def run(
        self,
        method: str,
        params: Any = None,
        timeout_s: float = 30.0,
        context: dict[str, Any] | None = None,
    ) -> tuple[bool, bytes]:
        """Run one call; ``(True, result JSON)`` or ``(False, error object JSON)``."""
        ...


class DocumentUnavailable(Exception):
    """No worker could build the document (REST: 503); ``error`` is the worker call's error.

    Args:
        error: the JSON-RPC error of the worker call, e.g. -32003 busy or -32001 time-out.
    """

    def __init__(self, error: JsonRpcError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenRpcCache:
    """The OpenRPC document of the pool's current generation, built once per generation.

    Args:
        pool: the process pool whose workers build the document.
        title: ``info.title`` of the document.
    """

    def __init__(self, pool: WorkerRunner, title: str = "sbusr") -> None:
        self.pool = pool
        self.title = title
        self._generation = -1
        self._fetch: asyncio.Future[bytes] | None = None

    async def document_json(self) -> bytes:
        """Return the document of the current generation as compact UTF-8 JSON bytes.

        Raises:
            DocumentUnavailable: the worker call failed (e.g. -32003 busy, -32001 time-out);
                nothing is cached then, the next request tries again.
        """
        generation = self.pool.generation
        if self._fetch is None or self._generation != generation:
            self._generation = generation
            self._fetch = asyncio.ensure_future(self._build(generation))
        fetch = self._fetch
        try:
            return await asyncio.shield(fetch)
        except JsonRpcError as error:
            if self._fetch is fetch:
                self._fetch = None
            raise DocumentUnavailable(error) from error

    async def _build(self, generation: int) -> bytes:
        ok, payload = await self.pool.run(
            "rpc.discover",
            {"title": self.title, "version": __version__},
            timeout_s=DISCOVER_TIMEOUT_S,
        )
        if not ok:
            error = decode_strict(payload)
            raise JsonRpcError(
                error.get("code", InternalError.code), error.get("message"), error.get("data")
            )
        logger.debug("OpenRPC document of generation %d: %d bytes", generation, len(payload))
        return payload

    async def rpc_discover(self, params: Any) -> Any:
        """The server method ``rpc.discover``: returns the document (a dict).

        Params are ignored (OpenRPC: the discovery method takes none).

        Raises:
            JsonRpcError: the worker call's error (see :meth:`document_json`).
        """
        try:
            return decode_strict(await self.document_json())
        except DocumentUnavailable as exc:
            raise exc.error from None
