"""``python run.py deadletters list|show|replay|drop``: the dead letters from the command line.

Talks to Redis directly (``--url``, default ``SBUSR_REDIS_URL``; prefix ``SBUSR_BUS_PREFIX``),
not to a server: it works with no server running and needs no bearer token, only the access
to Redis an operator of the bus has anyway. Same operations and output as the REST routes
(:mod:`server.http.deadletters`)::

    run.py deadletters list [--limit N] [--before ENTRY_ID]
    run.py deadletters show ENTRY_ID
    run.py deadletters replay ENTRY_ID [--timeout-ms N]
    run.py deadletters drop ENTRY_ID

Prints the answer as JSON on stdout and exits 0; exits 1 for an unknown entry id or an
unreachable Redis (the reason on stderr), 2 for a bad command line or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from busclient import UNUSABLE_ERRORS, async_redis
from server.bus.counters import BusCounters
from server.bus.deadletters import MAX_PAGE, DeadLetterNotFound, DeadLetters
from settings import Settings
from wire.keys import BusKeys
from wire.redact import redact_url

__all__ = ["main"]


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py deadletters", description="List, replay or drop the bus's dead letters."
    )
    parser.add_argument("--url", help="Redis URL of the bus (default SBUSR_REDIS_URL)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="a page of dead letters, newest first")
    listing.add_argument("--limit", type=int, default=50, help=f"1-{MAX_PAGE} (default 50)")
    listing.add_argument("--before", help="only older than this entry id (next_before)")
    show = commands.add_parser("show", help="one dead letter")
    show.add_argument("entry_id")
    replay = commands.add_parser("replay", help="put a dead letter back on the request stream")
    replay.add_argument("entry_id")
    replay.add_argument(
        "--timeout-ms", type=int, dest="timeout_ms", help="a fresh deadline, ms from now"
    )
    drop = commands.add_parser("drop", help="delete a dead letter")
    drop.add_argument("entry_id")
    return parser.parse_args(argv)


async def _run(url: str, settings: Settings, arguments: argparse.Namespace) -> dict[str, Any]:
    client = async_redis(url)
    deadletters = DeadLetters(
        client,
        BusKeys(settings.bus_prefix),
        BusCounters(),
        settings.deadletter_max_entries,
        settings.deadletter_max_age_s,
    )
    try:
        if arguments.command == "list":
            return await deadletters.page(arguments.limit, arguments.before)
        if arguments.command == "show":
            return await deadletters.get(arguments.entry_id)
        if arguments.command == "replay":
            return await deadletters.replay(arguments.entry_id, arguments.timeout_ms)
        return await deadletters.drop(arguments.entry_id)
    finally:
        await client.aclose()


def main(argv: list[str]) -> int:
    """Run the command line (``argv`` after ``deadletters``); returns the exit code."""
    import settings as settings_module

    arguments = _arguments(argv)
    if arguments.command == "list" and not 1 <= arguments.limit <= MAX_PAGE:
        print(f"run.py deadletters: --limit must be 1-{MAX_PAGE}", file=sys.stderr)
        return 2
    timeout_ms = getattr(arguments, "timeout_ms", None)
    if timeout_ms is not None and timeout_ms < 1:
        print("run.py deadletters: --timeout-ms must be >= 1", file=sys.stderr)
        return 2
    try:
        settings = settings_module.load()
    except settings_module.SettingsError as exc:
        print(f"run.py deadletters: invalid setting: {exc}", file=sys.stderr)
        return 2
    url = arguments.url or settings.redis_url
    if not url:
        print("run.py deadletters: needs --url or SBUSR_REDIS_URL", file=sys.stderr)
        return 2
    try:
        answer = asyncio.run(_run(url, settings, arguments))
    except DeadLetterNotFound as exc:
        print(f"run.py deadletters: {exc}", file=sys.stderr)
        return 1
    except UNUSABLE_ERRORS as exc:
        print(f"run.py deadletters: Redis at {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0
