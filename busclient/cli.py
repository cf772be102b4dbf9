"""``python run.py call [--bus] [--url URL] [--timeout S] [--no-deadline] METHOD [PARAMS...]``:
call one method.

Over HTTP (default: ``http://<SBUSR_HOST>:<SBUSR_PORT>/rpc``, with ``SBUSR_AUTH_TOKEN`` as
bearer token when set) or over the bus (``--bus``; default URL ``SBUSR_REDIS_URL``). Each
PARAM is parsed as JSON when it parses (``2``, ``true``, ``[1,2]``, ``{"a":1}``, ``"x"``) and
taken as a string otherwise (``hello``); they are sent by position. ``--named '{"a":1}'``
sends params by name instead.

The call carries its time-out as its deadline (HTTP ``X-Timeout-Ms``, bus ``deadline_ms``), so
it is never started after the command gave up waiting; ``--no-deadline`` sends none.

Prints the result as JSON on stdout and exits 0; prints the error object (or what went
wrong) on stderr and exits 1; exits 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from busclient._errors import BusError, RpcError
from busclient._protocol import request_payload, result
from busclient._sync import BusClient
from wire.codec import decode_strict
from wire.deadline import TIMEOUT_HEADER

__all__ = ["main", "parse_param"]


def parse_param(text: str) -> Any:
    """``"2"`` -> 2, ``"[1,2]"`` -> [1, 2], ``"hello"`` -> ``"hello"`` (JSON when it parses).

    Text that is not strict JSON (RFC 8259) is taken as a string: ``"NaN"`` -> ``"NaN"``.
    """
    try:
        return decode_strict(text)
    except (ValueError, RecursionError):
        return text


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py call", description="Call one JSON-RPC method of sbusr."
    )
    parser.add_argument(
        "--bus", action="store_true", help="call over the Redis bus instead of HTTP"
    )
    parser.add_argument("--url", help="HTTP URL of /rpc, or with --bus the Redis URL")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        dest="timeout_s",
        help="seconds to wait for the reply (default 30)",
    )
    parser.add_argument(
        "--no-deadline",
        action="store_false",
        dest="send_deadline",
        help="send no deadline: the call may still run after the time-out",
    )
    parser.add_argument("--named", type=decode_strict, help="params by name, a JSON object")
    parser.add_argument("method", help="the method's dotted name, e.g. greetings.greet")
    parser.add_argument("params", nargs="*", help="params by position (JSON when it parses)")
    return parser.parse_args(argv)


def _call_http(
    url: str, token: str | None, method: str, params: Any, timeout_s: float, send_deadline: bool
) -> Any:
    request = urllib.request.Request(
        url,
        data=request_payload(method, params, 1),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if send_deadline:
        request.add_header(TIMEOUT_HEADER, str(round(timeout_s * 1000.0)))
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        if exc.code != 503:  # 503 carries a JSON-RPC -32003 body
            raise RuntimeError(f"HTTP {exc.code}: {body.decode(errors='replace')}") from exc
    return result(decode_strict(body))


def main(argv: list[str]) -> int:
    """Run the command line (``argv`` after ``call``); returns the exit code."""
    import settings as settings_module

    arguments = _arguments(argv)
    if arguments.named is not None and arguments.params:
        print("run.py call: give params by position or --named, not both", file=sys.stderr)
        return 2
    params = (
        arguments.named
        if arguments.named is not None
        else ([parse_param(text) for text in arguments.params] or None)
    )
    try:
        settings = settings_module.load()
    except settings_module.SettingsError as exc:
        print(f"run.py call: invalid setting: {exc}", file=sys.stderr)
        return 2
    try:
        if arguments.bus:
            url = arguments.url or settings.redis_url
            if not url:
                print("run.py call: --bus needs --url or SBUSR_REDIS_URL", file=sys.stderr)
                return 2
            with BusClient(
                url, prefix=settings.bus_prefix, send_deadline=arguments.send_deadline
            ) as bus:
                value = bus.call(arguments.method, params, timeout_s=arguments.timeout_s)
        else:
            url = arguments.url or f"http://{settings.host}:{settings.port}/rpc"
            value = _call_http(
                url,
                settings.auth_token,
                arguments.method,
                params,
                arguments.timeout_s,
                arguments.send_deadline,
            )
    except RpcError as exc:
        print(json.dumps({"error": exc.to_object()}, ensure_ascii=False), file=sys.stderr)
        return 1
    except (BusError, OSError, RuntimeError, ValueError) as exc:
        print(f"run.py call: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(value, ensure_ascii=False))
    return 0
