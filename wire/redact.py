"""Redaction of secrets before anything reaches a log line, a repr or a cache key.

What is redacted (replaced by ``***``):

- the password in a URL's user info (``redis://:pw@host`` → ``redis://:***@host``),
- query-string values whose name looks like a credential (see
  ``SECRET_QUERY_NAMES``; matched case-insensitively, also as a suffix such as
  ``client_secret`` or ``x_api_key``),
- the headers in ``SECRET_HEADERS`` (Authorization, Proxy-Authorization,
  Cookie, Set-Cookie and common API-key headers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "SECRET_QUERY_NAMES",
    "cache_key_for_url",
    "redact_headers",
    "redact_url",
]

MASK = "***"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
    }
)

SECRET_QUERY_NAMES = (
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "signature",
    "sig",
    "auth",
)


def _is_secret_query_name(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return any(lowered == secret or lowered.endswith("_" + secret) for secret in SECRET_QUERY_NAMES)


def redact_url(url: object) -> str:
    """Return ``url`` as text with its password and secret query values masked.

    Args:
        url: a ``str``, ``httpx.URL`` or anything whose ``str()`` is a URL.

    Returns:
        The URL text, e.g. ``"https://u:***@h/p?token=***&page=2"`` for
        ``"https://u:pw@h/p?token=abc&page=2"``. Text that is not a URL comes
        back unchanged.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret_query_name(name) for name, _ in pairs):
            query = urlencode(
                [(name, MASK if _is_secret_query_name(name) else value) for name, value in pairs],
                safe="*",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """Return a plain dict copy of ``headers`` with secret values masked.

    Args:
        headers: a mapping (``dict``, ``httpx.Headers``) or ``(name, value)`` pairs.

    Returns:
        ``{name: value}`` where every header named in ``SECRET_HEADERS``
        (case-insensitive) has the value ``"***"``. Repeated names keep the last value.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (MASK if name.lower() in SECRET_HEADERS else value) for name, value in items}


def cache_key_for_url(url: str, *extra: object) -> str:
    """Return a cache key for a connection URL that never contains its password.

    The key is the redacted URL plus a short SHA-256 digest of the full URL and
    ``extra`` (so two URLs differing only by password, or the same URL with other
    pool options, get different keys).

    Args:
        url: the connection URL, password included.
        *extra: further values that distinguish cache entries (their ``repr`` is hashed).

    Returns:
        e.g. ``"mysql+pymysql://root:***@127.0.0.1/test#3f2a9c1b7d4e5f60"``.
    """
    digest = hashlib.sha256(repr((url, extra)).encode()).hexdigest()[:16]
    return f"{redact_url(url)}#{digest}"
