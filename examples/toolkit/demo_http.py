"""Example: an HTTP call through the toolkit's retrying client (``kit.http``).

Call it as ``demo_http.fetch_status`` with ``{"url": "https://example.org/"}``.

The toolkit is imported inside the function: workers import every methods module
when they start (and on each reload), so heavy imports at module level would slow
down every worker start; here the cost is paid by the first call in each worker.
"""

import time
from typing import Any


def fetch_status(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """GET ``url`` and report how it went.

    The call is retried on connection errors, time-outs and 429/502/503/504 (up to
    3 attempts). When every attempt failed the method raises ``kit.errors.RetryError``
    (the caller gets JSON-RPC -32000 with ``data.type`` "RetryError").

    Args:
        url: an absolute http(s) URL.
        timeout_s: time-out of each attempt, in seconds.

    Returns:
        ``{"status": <HTTP status code>, "elapsed_ms": <whole call, ms>}``.
    """
    from kit.http import requests

    started = time.monotonic()
    response = requests.get(url, timeout=timeout_s)
    return {
        "status": response.status_code,
        "elapsed_ms": round((time.monotonic() - started) * 1000.0, 1),
    }
