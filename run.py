#!/usr/bin/env python3
"""Command line of sbusr: ``python run.py`` serves JSON-RPC on the embedded defaults.

Options override the ``SBUSR_*`` environment variables (see settings.py and
docs/operations.md). Exit codes: 0 after a graceful stop, 1 when the methods fail to import,
2 for a bad option or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import settings as settings_module
from server import __version__
from server.log_text import EscapingFormatter

#: Fields a record may carry besides the standard ones: the request id of a call (also on
#: the workers' records) and the access log's facts.
EXTRA_FIELDS = ("request_id", "http_method", "path", "status", "duration_ms", "rpc_methods")


class TextFormatter(EscapingFormatter):
    """``time level logger[pid] message``, then ``request_id=...`` when the record has one;
    control characters in the message escaped (:mod:`server.log_text`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return line if request_id is None else f"{line} request_id={request_id}"


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, process, message (and exception),
    plus the :data:`EXTRA_FIELDS` the record has."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: int, log_format: str) -> None:
    """Send every log record of this process (and of the workers) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``argv`` without the program name)."""
    parser = argparse.ArgumentParser(
        prog="run.py", description="sbusr: a JSON-RPC 2.0 method server."
    )
    parser.add_argument("-V", "--version", action="version", version="sbusr " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "-W",
        "--no-web-server",
        action="store_true",
        help="do not serve HTTP (serve the message bus only)",
    )
    parser.add_argument("--host", help="address to bind (SBUSR_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (SBUSR_PORT, default 8080)")
    parser.add_argument(
        "--methods", type=Path, help="folder of the methods package (SBUSR_METHODS_DIR)"
    )
    parser.add_argument("--redis", help="Redis URL of the message bus (SBUSR_REDIS_URL)")
    parser.add_argument(
        "--reload",
        action="store_true",
        help="development: start a new generation of workers whenever a methods file changes",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the server (or ``run.py call ...``, see busclient/cli.py); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["call"]:
        from busclient.cli import main as call_main

        return call_main(argv[1:])
    arguments = parse_arguments(argv)
    try:
        settings = settings_module.load()
    except settings_module.SettingsError as exc:
        print(f"sbusr: invalid setting: {exc}", file=sys.stderr)
        return 2
    changes = {
        key: value
        for key, value in (
            ("host", arguments.host),
            ("port", arguments.port),
            ("methods_dir", arguments.methods.resolve() if arguments.methods else None),
            ("redis_url", arguments.redis),
        )
        if value is not None
    }
    settings = settings.replace(**changes)
    level = logging.DEBUG if arguments.verbose else logging.INFO
    setup_logging(level, settings.log_format)
    if arguments.no_web_server and not settings.redis_url:
        logging.getLogger("sbusr").error("-W needs the message bus: set SBUSR_REDIS_URL or --redis")
        return 2
    if settings.use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from server.main import serve

    return asyncio.run(
        serve(settings, level, web=not arguments.no_web_server, reload=arguments.reload)
    )


if __name__ == "__main__":
    sys.exit(main())
