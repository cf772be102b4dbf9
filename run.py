#!/usr/bin/env python3
"""Command line of sbusr: ``python run.py`` serves JSON-RPC on the embedded defaults.

Options override the ``SBUSR_*`` environment variables (see settings.py and
docs/operations.md). Exit codes: 0 after a graceful stop, 1 when the methods fail to import,
2 for a bad option or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import sys
from pathlib import Path

import settings as settings_module
from server import __version__
from server.log_text import EscapingFormatter

#: Fields a record may carry besides the standard ones: the request id of a call (also on
#: the workers' records), the access log's facts, the method and call id of a method's error
#: record, and the W3C trace context of the call (workers' records, with tracing on).
EXTRA_FIELDS = (
    "request_id",
    "http_method",
    "path",
    "status",
    "duration_ms",
    "rpc_methods",
    "traceparent",
    "rpc_method",
    "call_id",
)


class TextFormatter(EscapingFormatter):
    """``time level logger[pid] message``, then ``request_id=...`` when the record has one.

    Control characters in the message are escaped (:mod:`server.log_text`), so the message is
    one line, and the request id ends it (a traceback follows), so grepping an id finds the
    line that opens every record of the request.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} request_id={request_id}{newline}{rest}"


#: Loggers of libraries that talk a lot (APScheduler: "Looking for jobs to run" every poll, a
#: line per job run): held at WARNING unless ``-vv`` asks for everything.
CHATTY_LOGGERS = ("apscheduler",)


def iso_time_ms(created_s: float) -> str:
    """ISO 8601 local time with milliseconds and offset, e.g. ``2026-12-04T17:06:15.273+00:00``.

    Args:
        created_s: seconds since the epoch (``LogRecord.created``).
    """
    moment = datetime.datetime.fromtimestamp(created_s).astimezone()
    return moment.isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time (ISO 8601, milliseconds), level, logger, process,
    message (and exception), plus the :data:`EXTRA_FIELDS` the record has."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": iso_time_ms(record.created),
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


def setup_logging(level: int, log_format: str, chatty: bool = False) -> None:
    """Send every log record of this process (and of the workers) to stderr.

    Args:
        level: the root level (a :mod:`logging` number).
        log_format: ``text`` or ``json``.
        chatty: let the :data:`CHATTY_LOGGERS` log at ``level`` too; False: WARNING and up.
    """
    # The formats show no source position, thread or process names: skip collecting them for
    # every record (the logging HOWTO's "Optimization" section). The pid stays.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if chatty else logging.WARNING)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``argv`` without the program name)."""
    parser = argparse.ArgumentParser(
        prog="run.py", description="sbusr: a JSON-RPC 2.0 method server."
    )
    parser.add_argument("-V", "--version", action="version", version="sbusr " + __version__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log at DEBUG level; -vv also lets APScheduler log below WARNING",
    )
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
    """Run the server (or ``run.py call ...``, see busclient/cli.py, or ``run.py deadletters
    ...``, see server/bus/deadletters_cli.py); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["call"]:
        from busclient.cli import main as call_main

        return call_main(argv[1:])
    if argv[:1] == ["deadletters"]:
        from server.bus.deadletters_cli import main as deadletters_main

        return deadletters_main(argv[1:])
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
    setup_logging(level, settings.log_format, chatty=arguments.verbose >= 2)
    if arguments.no_web_server and not settings.redis_url:
        logging.getLogger("sbusr").error("-W needs the message bus: set SBUSR_REDIS_URL or --redis")
        return 2
    from server.startup_checks import StartupRefused, check_startup, warn_unknown_variables

    warn_unknown_variables()
    try:
        check_startup(settings, web=not arguments.no_web_server)
    except StartupRefused as exc:
        logging.getLogger("sbusr").error("cannot start: %s", exc)
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
