"""Errors raised by the toolkit (``kit``).

Every error the toolkit raises on its own account derives from one root, so a
method can catch them all with ``except KitError``::

    KitError
    ├── RetryError          an HTTP call failed on every allowed attempt
    └── LockError
        ├── LockNotAcquired the lock is held by someone else (non-blocking or
        │                   blocking time-out)
        └── LockLost        the lock expired or was taken over while held

Errors of the libraries underneath (httpx, SQLAlchemy, redis-py) that the
toolkit does not handle pass through unchanged; where the toolkit maps one it
does so with ``raise ... from exc`` so the original stays on ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["KitError", "LockError", "LockLost", "LockNotAcquired", "RetryError"]


class KitError(Exception):
    """Root of every error raised by the toolkit itself."""


class RetryError(KitError):
    """An HTTP call failed on every allowed attempt (retries are exhausted).

    Raised by ``kit.http.Client`` / ``AsyncClient`` when the last attempt still
    had a retryable outcome: a retryable status (by default 429, 502, 503, 504
    or what ``retry_by_result`` flags) or a retryable exception (by default
    connection errors and time-outs, or the types in ``retry_by_except``).

    Attributes:
        method: HTTP method, e.g. ``"GET"``.
        url: the request URL with secrets redacted (safe to log).
        attempts: how many attempts were made (1 = no retry happened).
        elapsed_ms: wall time from the first attempt to giving up, in ms.
        response: the last ``httpx.Response`` when the last attempt got one,
            else ``None``.
        error: the last exception when the last attempt raised one, else
            ``None``; it is also this error's ``__cause__``.
    """

    def __init__(
        self,
        *,
        method: str,
        url: str,
        attempts: int,
        elapsed_ms: float,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.attempts = attempts
        self.elapsed_ms = elapsed_ms
        self.response = response
        self.error = error
        if response is not None:
            last = f"last status {response.status_code}"
        else:
            last = f"last error {type(error).__name__}: {error}"
        super().__init__(
            f"{method} {url} failed after {attempts} attempt(s) in {elapsed_ms:.0f} ms; {last}"
        )

    @property
    def status_code(self) -> int | None:
        """Status of the last response, or ``None`` when the last attempt raised."""
        return None if self.response is None else self.response.status_code


class LockError(KitError):
    """Base of the Redis lock errors (``kit.lock``)."""


class LockNotAcquired(LockError):
    """The lock is held by another holder: raised by a non-blocking acquire, or
    by a blocking one whose ``blocking_timeout_s`` ran out."""


class LockLost(LockError):
    """The lock was no longer ours when it was released or renewed: it expired
    (no renewal, or renewal failed) and may now belong to another holder.

    Mutual exclusion was not guaranteed for the whole critical section. The
    other holder's lock is never deleted.
    """
