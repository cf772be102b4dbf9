"""Retrying HTTP clients: ``Client`` (sync) and ``AsyncClient`` on httpx, retries on tenacity.

Both are subclasses of the httpx clients, so every httpx option (``timeout``,
``headers``, ``auth``, ``base_url``, ``transport``, ``limits``...) and method
(``get``, ``post``, ``request``, ``stream``, ``send``...) works as in httpx. On top:

- retries, configured by the settings users know from fastkit (see ``RetryPolicy``
  for names, units and defaults);
- ``RetryError`` (``kit.errors``) when every allowed attempt failed, carrying the
  last response or exception and the attempt count; never a made-up status code;
- one log line per call on the logger ``kit.http`` with method, redacted URL,
  status, attempts and elapsed ms (``extra={"http_call": {...}}`` holds the same
  fields plus redacted request headers);
- inside a call that has a caller's deadline (:func:`kit.deadline_ms`), each attempt's
  time-outs (connect, read, write, pool) are cut to the time left when that is sooner, an
  attempt is not started once the deadline passed (``httpx.TimeoutException``), and no retry
  starts whose wait would end past it.

Ready instances, shared per process (and per event loop for the async one),
created on first use::

    from kit.http import requests, aiorequests
    response = requests.get("https://example.org/")
    response = await aiorequests.get("https://example.org/")
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import enum
import logging
import math
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import tenacity

from executor.context import TRACE_CONTEXT_KEYS, call_context
from kit._process_cache import ProcessCache
from kit.deadline import time_left_s
from kit.errors import RetryError
from wire.redact import redact_headers, redact_url

__all__ = [
    "DEFAULT_RETRY_EXCEPTIONS",
    "IDEMPOTENT_METHODS",
    "RENAMED_RETRY_SETTINGS",
    "RETRY_STATUSES",
    "AsyncClient",
    "Client",
    "RetryError",
    "RetryPolicy",
    "aiorequests",
    "close_all",
    "is_retryable_status",
    "pass_trace_context",
    "requests",
    "retry_after_s",
    "split_retry_options",
    "within_deadline",
]

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods retried by default (RFC 9110 section 9.2.2)."""

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses retried by default: too many requests, bad gateway, unavailable, gateway time-out."""

DEFAULT_RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
"""Exceptions retried by default: time-outs (connect, read, write, pool), connection
errors (refused, reset, closed) and a peer that broke the HTTP protocol mid-answer."""


def is_retryable_status(response: httpx.Response) -> bool:
    """Default ``retry_by_result``: True when the status is in ``RETRY_STATUSES``."""
    return response.status_code in RETRY_STATUSES


def retry_after_s(response: httpx.Response) -> float | None:
    """Return the wait the server asked for in ``Retry-After``, in seconds.

    Args:
        response: any response; only 429 and 503 responses are considered.

    Returns:
        Seconds (>= 0) from a delta-seconds or HTTP-date value, or ``None`` when
        the header is absent, unparsable or the status is neither 429 nor 503.
    """
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class _Unset(enum.Enum):
    """Marks a deprecated ``RetryPolicy`` argument that was not given."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET

#: Old ``RetryPolicy`` names (those of the ``retrying`` library, where they are milliseconds)
#: -> the names in seconds that replace them.
RENAMED_RETRY_SETTINGS = {
    "stop_max_delay": "stop_max_delay_s",
    "wait_exponential_multiplier": "wait_exponential_multiplier_s",
    "wait_exponential_max": "wait_exponential_max_s",
}


def _warn_renamed(old_name: str, stacklevel: int) -> None:
    new_name = RENAMED_RETRY_SETTINGS[old_name]
    warnings.warn(
        f"the retry setting {old_name!r} is renamed {new_name!r} (seconds)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """When and how long an HTTP call is retried. All durations are in seconds (``_s``).

    Attributes:
        stop_max_attempt_number: attempts in total, the first one included
            (1 = never retry). Default 3.
        stop_max_delay_s: time budget in seconds from the first attempt; no retry starts
            if its wait would end past the budget. ``None`` = no budget. Default 60.
        wait_exponential_multiplier_s: the wait before retry n is
            ``multiplier * 2 ** (n - 1)`` seconds (0.5, 1, 2, 4...). Default 0.5.
        wait_exponential_max_s: upper bound of that wait in seconds. Default 10.
        retry_by_result: ``callable(response) -> bool``; True means retry this
            response. Replaces the default ``is_retryable_status``.
        retry_by_except: exception types to retry. Replaces
            ``DEFAULT_RETRY_EXCEPTIONS`` (add those to your tuple to keep them).
        retry_non_idempotent: also retry POST, PATCH, CONNECT and others outside
            ``IDEMPOTENT_METHODS``. Default False: they are sent once.
        retry_after_max_s: a ``Retry-After`` on a 429/503 replaces the
            exponential wait, capped at this many seconds. Default 30.

    The names ``stop_max_delay``, ``wait_exponential_multiplier`` and ``wait_exponential_max``
    (the ``retrying`` library's, milliseconds there; seconds here) are still accepted as
    arguments, with a ``DeprecationWarning``; see :data:`RENAMED_RETRY_SETTINGS`.

    Raises:
        ValueError: on a count below 1 or a negative duration.
        TypeError: a setting given under both its old and its new name.
    """

    stop_max_attempt_number: int = 3
    stop_max_delay_s: float | None = 60.0
    wait_exponential_multiplier_s: float = 0.5
    wait_exponential_max_s: float = 10.0
    retry_by_result: Callable[[httpx.Response], bool] | None = None
    retry_by_except: tuple[type[BaseException], ...] | type[BaseException] = (
        DEFAULT_RETRY_EXCEPTIONS
    )
    retry_non_idempotent: bool = False
    retry_after_max_s: float = 30.0
    stop_max_delay: dataclasses.InitVar[float | None | _Unset] = _UNSET
    wait_exponential_multiplier: dataclasses.InitVar[float | _Unset] = _UNSET
    wait_exponential_max: dataclasses.InitVar[float | _Unset] = _UNSET

    def __post_init__(
        self,
        stop_max_delay: float | None | _Unset,
        wait_exponential_multiplier: float | _Unset,
        wait_exponential_max: float | _Unset,
    ) -> None:
        old_values = {
            "stop_max_delay": stop_max_delay,
            "wait_exponential_multiplier": wait_exponential_multiplier,
            "wait_exponential_max": wait_exponential_max,
        }
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        for old_name, value in old_values.items():
            if value is _UNSET:
                continue
            new_name = RENAMED_RETRY_SETTINGS[old_name]
            if getattr(self, new_name) != defaults[new_name]:
                raise TypeError(f"give {new_name} only, not also {old_name}")
            _warn_renamed(old_name, stacklevel=4)  # (this, __post_init__, __init__) the caller
            object.__setattr__(self, new_name, value)
        if isinstance(self.retry_by_except, type):
            object.__setattr__(self, "retry_by_except", (self.retry_by_except,))
        if self.stop_max_attempt_number < 1:
            raise ValueError(
                f"stop_max_attempt_number must be >= 1, got {self.stop_max_attempt_number!r}"
            )
        for name in (
            "stop_max_delay_s",
            "wait_exponential_multiplier_s",
            "wait_exponential_max_s",
            "retry_after_max_s",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")

    def retries(self, method: str) -> bool:
        """True when calls with this HTTP method may be retried under this policy."""
        return self.retry_non_idempotent or method.upper() in IDEMPOTENT_METHODS

    def is_retryable_response(self, response: httpx.Response) -> bool:
        """True when ``response`` calls for another attempt."""
        predicate = self.retry_by_result or is_retryable_status
        return bool(predicate(response))

    def wait_s(self, retry_state: tenacity.RetryCallState) -> float:
        """Seconds to wait before the next attempt (tenacity ``wait`` callable)."""
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            asked_s = retry_after_s(outcome.result())
            if asked_s is not None:
                return min(asked_s, self.retry_after_max_s)
        exponent = retry_state.attempt_number - 1
        return min(
            self.wait_exponential_multiplier_s * math.pow(2, exponent),
            self.wait_exponential_max_s,
        )

    def tenacity_options(self, method: str) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying``/``AsyncRetrying`` for one call."""
        if not self.retries(method):
            return {"retry": tenacity.retry_never, "stop": tenacity.stop_after_attempt(1)}
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.stop_max_attempt_number)
        if self.stop_max_delay_s is not None:
            stop = stop | tenacity.stop_before_delay(self.stop_max_delay_s)
        return {
            "retry": tenacity.retry_if_exception_type(self.retry_by_except)
            | tenacity.retry_if_result(self.is_retryable_response),
            "stop": stop,
            "wait": self.wait_s,
        }


_RETRY_SETTING_NAMES = frozenset(
    [*(field.name for field in dataclasses.fields(RetryPolicy)), *RENAMED_RETRY_SETTINGS]
)


def split_retry_options(
    retry_policy: RetryPolicy | None, options: dict[str, Any]
) -> tuple[RetryPolicy, dict[str, Any]]:
    """Split a client's keyword arguments into its ``RetryPolicy`` and the httpx options.

    Args:
        retry_policy: a ready policy, or ``None`` to build one from ``options``.
        options: keyword arguments; those named like ``RetryPolicy`` fields are
            retry settings, the rest is for httpx.

    Returns:
        ``(policy, httpx_options)``.

    Raises:
        TypeError: both ``retry_policy`` and individual retry settings were given, or one
            setting under its old and its new name.
        ValueError: a retry setting is out of range (see ``RetryPolicy``).
    """
    settings = {name: options[name] for name in options if name in _RETRY_SETTING_NAMES}
    httpx_options = {name: v for name, v in options.items() if name not in settings}
    for old_name, new_name in RENAMED_RETRY_SETTINGS.items():
        if old_name in settings:
            if new_name in settings:
                raise TypeError(f"give {new_name} only, not also {old_name}")
            _warn_renamed(old_name, stacklevel=4)  # (this, here, the client) its caller
            settings[new_name] = settings.pop(old_name)
    if retry_policy is not None and settings:
        raise TypeError(f"pass either retry_policy or retry settings, not both: {sorted(settings)}")
    return retry_policy or RetryPolicy(**settings), httpx_options


def _outcome(retry_state: tenacity.RetryCallState) -> tenacity.Future:
    """The outcome of the attempt that just ended (set whenever tenacity calls back)."""
    outcome = retry_state.outcome
    if outcome is None:
        raise RuntimeError("tenacity called back before an attempt ended")
    return outcome


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop retrying when the wait before the next attempt would end past the call's deadline."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        left_s = time_left_s()
        return left_s is not None and left_s <= retry_state.upcoming_sleep


def within_deadline(request: httpx.Request) -> None:
    """Cut the time-outs of ``request`` to the time left before the current call's deadline.

    Each of httpx's ``connect``, ``read``, ``write`` and ``pool`` time-outs (seconds; None: no
    limit) becomes the lesser of its value and the time left. Nothing changes outside a call or
    when the call has no deadline (:func:`kit.time_left_s` is None).

    Raises:
        httpx.TimeoutException: the deadline has passed; the request is not sent.
    """
    left_s = time_left_s()
    if left_s is None:
        return
    if left_s <= 0:
        raise httpx.TimeoutException(
            "the call's deadline passed before the request was sent", request=request
        )
    timeouts = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {
        name: left_s if timeouts.get(name) is None else min(timeouts[name], left_s)
        for name in ("connect", "read", "write", "pool")
    }


class _Call:
    """Bookkeeping of one logical call (all its attempts): counting, logging, the final error."""

    def __init__(self, request: httpx.Request, policy: RetryPolicy) -> None:
        self.method = request.method
        self.url = redact_url(request.url)
        self.request_headers = redact_headers(request.headers.multi_items())
        self.policy = policy
        self.attempts = 0
        self.started = time.monotonic()
        self.response: httpx.Response | None = None

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def retrying_options(self, before_sleep: Callable[..., Any]) -> dict[str, Any]:
        options = self.policy.tenacity_options(self.method)
        options["stop"] = options["stop"] | _StopAtDeadline()
        return {**options, "before_sleep": before_sleep, "reraise": False}

    def log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        outcome = _outcome(retry_state)
        what = (
            type(outcome.exception()).__name__ if outcome.failed else outcome.result().status_code
        )
        logger.debug(
            "retrying %s %s after attempt %d (%s), waiting %.3f s",
            self.method,
            self.url,
            self.attempts,
            what,
            retry_state.upcoming_sleep,
        )

    def log_outcome(self, response: httpx.Response | None, error: BaseException | None) -> None:
        elapsed_ms = self.elapsed_ms()
        status = None if response is None else response.status_code
        fields = {
            "method": self.method,
            "url": self.url,
            "status": status,
            "attempts": self.attempts,
            "elapsed_ms": round(elapsed_ms, 1),
            "error": None if error is None else type(error).__name__,
            "request_headers": self.request_headers,
        }
        level = logging.INFO if error is None else logging.WARNING
        logger.log(
            level,
            "http %s %s status=%s attempts=%d elapsed_ms=%.1f%s",
            self.method,
            self.url,
            status,
            self.attempts,
            elapsed_ms,
            "" if error is None else f" error={type(error).__name__}",
            extra={"http_call": fields},
        )

    @contextlib.contextmanager
    def reporting(self) -> Iterator[None]:
        """Around the retry loop, which sets ``self.response``: log the outcome
        once, and turn tenacity's ``RetryError`` into ours (``from`` the last error)."""
        try:
            yield
        except tenacity.RetryError as exc:
            raise self.exhausted(exc) from exc.last_attempt.exception()
        except BaseException as exc:
            self.log_outcome(None, exc)
            raise
        self.log_outcome(self.response, None)

    def exhausted(self, retry_error: tenacity.RetryError) -> RetryError:
        last = retry_error.last_attempt
        response = None if last.failed else last.result()
        error = last.exception() if last.failed else None
        exhausted = RetryError(
            method=self.method,
            url=self.url,
            attempts=self.attempts,
            elapsed_ms=self.elapsed_ms(),
            response=response,
            error=error,
        )
        self.log_outcome(response, exhausted)
        return exhausted


def pass_trace_context(request: httpx.Request) -> None:
    """Add the running call's W3C ``traceparent`` and ``tracestate`` headers to ``request``.

    With tracing on (``SBUSR_TRACING=1``) the server gives each call the trace context of its
    span; a request made during the call carries it, so the called service's spans join the
    call's trace. Headers the request already has are kept. Outside a traced call: nothing.
    """
    context = call_context.get()
    if context and TRACE_CONTEXT_KEYS[0] in context:
        headers = request.headers
        for name in TRACE_CONTEXT_KEYS:
            value = context.get(name)
            if value and name not in headers:
                headers[name] = value


class Client(httpx.Client):
    """A synchronous httpx client that retries failed calls.

    Args:
        retry_policy: a ready ``RetryPolicy``; or give its settings one by one:
        **options: the retry settings ``stop_max_attempt_number``,
            ``stop_max_delay_s``, ``wait_exponential_multiplier_s``,
            ``wait_exponential_max_s``, ``retry_by_result``, ``retry_by_except``,
            ``retry_non_idempotent``, ``retry_after_max_s`` (see ``RetryPolicy``;
            durations in seconds), and anything else, which goes to
            ``httpx.Client`` unchanged (``timeout`` in seconds, httpx default 5;
            ``headers``, ``auth``, ``base_url``, ``transport``...).

    Every request method returns the ``httpx.Response`` of the attempt that was
    not retried: a success, or a status the policy does not retry (e.g. 404).

    Raises:
        kit.errors.RetryError: the last allowed attempt still had a retryable
            outcome; ``.response`` / ``.error`` hold it, ``.attempts`` the count.
        httpx.HTTPError: an exception the policy does not retry, as httpx raised it.

    Use as a context manager (``with Client() as client:``) or call ``close()``.
    """

    def __init__(self, *, retry_policy: RetryPolicy | None = None, **options: Any) -> None:
        self.retry_policy, httpx_options = split_retry_options(retry_policy, options)
        super().__init__(**httpx_options)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """Send ``request`` with retries; see the class docstring for results and errors."""
        pass_trace_context(request)
        call = _Call(request, self.retry_policy)
        send_once = super().send

        def attempt() -> httpx.Response:
            call.attempts += 1
            within_deadline(request)
            return send_once(request, **kwargs)

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            call.log_retry(retry_state)
            outcome = _outcome(retry_state)
            if not outcome.failed:
                outcome.result().close()

        retrying = tenacity.Retrying(**call.retrying_options(before_sleep))
        with call.reporting():
            call.response = response = retrying(attempt)
        return response


class AsyncClient(httpx.AsyncClient):
    """An asyncio httpx client that retries failed calls.

    Same arguments, results and errors as ``Client`` (see there); awaitable
    methods, ``async with AsyncClient() as client:`` or ``await client.aclose()``.
    """

    def __init__(self, *, retry_policy: RetryPolicy | None = None, **options: Any) -> None:
        self.retry_policy, httpx_options = split_retry_options(retry_policy, options)
        super().__init__(**httpx_options)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """Send ``request`` with retries; see ``Client`` for results and errors."""
        pass_trace_context(request)
        call = _Call(request, self.retry_policy)
        send_once = super().send

        async def attempt() -> httpx.Response:
            call.attempts += 1
            within_deadline(request)
            return await send_once(request, **kwargs)

        async def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            call.log_retry(retry_state)
            outcome = _outcome(retry_state)
            if not outcome.failed:
                await outcome.result().aclose()

        retrying = tenacity.AsyncRetrying(**call.retrying_options(before_sleep))
        with call.reporting():
            response: httpx.Response = await retrying(attempt)
            call.response = response
        return response


# Ready-made shared instances ------------------------------------------------

_shared_clients: ProcessCache[Client] = ProcessCache("shared http client")
_shared_async_clients: ProcessCache[
    weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient]
] = ProcessCache("shared async http clients")


class _SharedProxy:
    """Forwards attribute access to a shared client found by ``_client()``.

    Created at import without any I/O; the client is built on first use. It is
    shared, so callers cannot close it (it lives as long as its process or loop).
    """

    _name = ""
    _closers: tuple[str, ...] = ()

    def _client(self) -> httpx.Client | httpx.AsyncClient:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name in self._closers:
            raise AttributeError(
                f"the shared {self._name!r} client cannot be closed; create your "
                "own kit.http.Client / AsyncClient to control a client's lifetime"
            )
        return getattr(self._client(), name)

    def __repr__(self) -> str:
        summary = (self.__doc__ or self._name).splitlines()[0]
        return f"<kit.http.{self._name}: {summary}>"


class _SharedClientProxy(_SharedProxy):
    """The shared ``Client``, one per process."""

    _name = "requests"
    _closers = ("close", "__enter__", "__exit__")

    def _client(self) -> Client:
        return _shared_clients.get_or_create("requests", Client)


class _SharedAsyncClientProxy(_SharedProxy):
    """The shared ``AsyncClient``, one per event loop and process.

    An httpx async connection pool must not outlive or cross its event loop, so
    each running loop gets its own client. Use it only inside a coroutine.
    """

    _name = "aiorequests"
    _closers = ("aclose", "__aenter__", "__aexit__")

    def _client(self) -> AsyncClient:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError as exc:
            raise RuntimeError(
                "kit.http.aiorequests is used inside a coroutine (no event loop is running)"
            ) from exc
        per_loop = _shared_async_clients.get_or_create("aiorequests", weakref.WeakKeyDictionary)
        client = per_loop.get(loop)
        if client is None:
            client = per_loop[loop] = AsyncClient()
        return client


def close_all() -> None:
    """Close this process's shared ``requests`` client (shutdown, tests); the next use builds one.

    The ``aiorequests`` clients are left alone: each belongs to its event loop and goes with it.
    """
    _shared_clients.clear(close=lambda client: client.close())


# Type checkers see the clients the proxies stand for (``requests.get(...)`` is an
# ``httpx.Response``); at run time they are the proxies.
requests: Client = cast(Client, _SharedClientProxy())
"""Shared retrying ``Client`` with default settings (one per process, built on first use)."""

aiorequests: AsyncClient = cast(AsyncClient, _SharedAsyncClientProxy())
"""Shared retrying ``AsyncClient``, default settings (one per event loop, built on first use)."""
