"""Start-up checks: a setting that cannot work stops the start before anything runs.

design.md, "Settings": "A setting that cannot work (bad URL, missing methods folder, port in
use) stops the start with exit code 2 and a message naming it." :func:`check_startup` runs
each check in turn and raises :class:`StartupRefused` at the first failure; its message is
one line that names the variable, its value (passwords masked) and the problem, e.g.::

    SBUSR_METHODS_DIR='/nonexistent': no such folder

It also enforces **protected mode** (modelled on Redis's): binding an address other than
loopback without ``SBUSR_AUTH_TOKEN`` is refused unless ``SBUSR_ALLOW_UNAUTHENTICATED=1``.

:func:`warn_unknown_variables` logs one WARNING per ``SBUSR_*`` variable that names no
setting, with the closest known name.

Casts of single values (``SBUSR_PORT=abc``) are checked earlier, by :func:`settings.load`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy.engine
import sqlalchemy.exc
import tornado.netutil

from settings import Settings, environment_variable, unknown_variables
from wire.redact import MASK, redact_url

__all__ = [
    "StartupRefused",
    "check_startup",
    "is_loopback",
    "listen_refusal",
    "warn_unknown_variables",
]

logger = logging.getLogger(__name__)

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class StartupRefused(Exception):
    """A setting cannot work; the message is the one line to show (variable, value, problem)."""


def _refuse(setting: str, shown_value: object, problem: str) -> StartupRefused:
    return StartupRefused(f"{environment_variable(setting)}={shown_value!r}: {problem}")


def _shown_url(url: str) -> str:
    """``url`` with its password masked; text that is no URL but may hold one is masked whole."""
    if "://" not in url and "@" in url:
        return MASK
    return redact_url(url)


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` (an address or ``localhost``) only accepts connections from here.

    Returns:
        True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``); False for
        any other address or host name (``0.0.0.0``, ``::``, ``example.org``).
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_methods_dir(methods_dir: Path) -> None:
    """The methods folder exists, is a folder and can be listed and read.

    Raises:
        StartupRefused: naming ``SBUSR_METHODS_DIR``.
    """
    if not methods_dir.exists():
        raise _refuse("methods_dir", str(methods_dir), "no such folder")
    if not methods_dir.is_dir():
        raise _refuse("methods_dir", str(methods_dir), "not a folder")
    if not os.access(methods_dir, os.R_OK | os.X_OK):
        raise _refuse("methods_dir", str(methods_dir), "the folder cannot be read (permissions)")


def check_redis_url(url: str) -> None:
    """The bus URL is a Redis URL redis-py accepts (``redis://``, ``rediss://``, ``unix://``).

    Raises:
        StartupRefused: naming ``SBUSR_REDIS_URL`` (password masked).
    """
    expected = "expected redis://[user:password@]host:port/db, rediss://... or unix:///path"
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in _REDIS_SCHEMES:
        raise _refuse("redis_url", _shown_url(url), expected)
    import redis.connection  # here: a server without the bus never loads redis

    try:
        options = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise _refuse("redis_url", _shown_url(url), f"{exc}; {expected}") from None
    if scheme.lower() != "unix" and not options.get("host"):
        raise _refuse("redis_url", _shown_url(url), f"no host; {expected}")


def check_database_url(url: str) -> None:
    """The database URL parses, names a known dialect, and its driver is installed.

    Raises:
        StartupRefused: naming ``SBUSR_DATABASE_URL`` (password masked).
    """
    expected = "expected a SQLAlchemy URL, e.g. postgresql://user@host/db or sqlite:///path"
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise _refuse("database_url", _shown_url(url), expected) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise _refuse("database_url", shown, f"unknown database {parsed.drivername!r}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise _refuse(
            "database_url", shown, f"the driver of {parsed.drivername!r} is not installed: {exc}"
        ) from None


def check_protected_mode(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without a token (unless explicitly allowed).

    Raises:
        StartupRefused: naming ``SBUSR_HOST`` and saying what to set.
    """
    if settings.auth_token or settings.allow_unauthenticated or is_loopback(settings.host):
        return
    raise _refuse(
        "host",
        settings.host,
        "protected mode: refusing to serve a non-loopback address without SBUSR_AUTH_TOKEN "
        "(anyone who reaches it could call every method and reload the code); set "
        "SBUSR_AUTH_TOKEN, or bind 127.0.0.1, or set SBUSR_ALLOW_UNAUTHENTICATED=1 to "
        "serve without auth anyway (unsafe)",
    )


def listen_refusal(host: str, port: int, exc: OSError) -> StartupRefused:
    """The refusal to show when ``host``:``port`` cannot be bound (``exc``, from the bind).

    Returns:
        A :class:`StartupRefused` naming ``SBUSR_HOST`` (no such address) or ``SBUSR_PORT``
        (in use, not allowed).
    """
    if isinstance(exc, socket.gaierror):
        return _refuse("host", host, f"not an address of this machine: {exc}")
    problem = exc.strerror or str(exc)
    return _refuse("port", port, f"cannot listen on {host}:{port}: {problem}")


def check_port(host: str, port: int) -> None:
    """The HTTP address can be bound now (the socket is closed again at once).

    Raises:
        StartupRefused: see :func:`listen_refusal`.
    """
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:
        raise listen_refusal(host, port, exc) from None
    for bound in sockets:
        bound.close()


def check_startup(settings: Settings, web: bool = True) -> None:
    """Run every start-up check on ``settings``; return when the server can start.

    Args:
        settings: the settings, command-line options applied.
        web: HTTP will be served (protected mode and the port are checked only then).

    Raises:
        StartupRefused: the first setting that cannot work (see the module doc).
    """
    check_methods_dir(settings.methods_dir)
    if settings.redis_url:
        check_redis_url(settings.redis_url)
    check_database_url(settings.database_url)
    if web:
        check_protected_mode(settings)
        check_port(settings.host, settings.port)


def warn_unknown_variables(environ: Mapping[str, str] | None = None) -> None:
    """Log a WARNING for each ``SBUSR_*`` variable that names no setting (see
    :func:`settings.unknown_variables`), with the closest known name when there is one."""
    for variable, closest in unknown_variables(environ):
        if closest:
            logger.warning("unknown variable %s ignored: did you mean %s?", variable, closest)
        else:
            logger.warning("unknown variable %s ignored: no setting has this name", variable)
