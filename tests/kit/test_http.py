"""kit.http: retries against a real local HTTP server, each setting checked, sync and async."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kit.errors import KitError, RetryError
from kit.http import (
    DEFAULT_RETRY_EXCEPTIONS,
    RENAMED_RETRY_SETTINGS,
    AsyncClient,
    Client,
    RetryPolicy,
    aiorequests,
    requests,
)
from tests.kit.conftest import ScriptedServer

FAST: dict[str, Any] = {"wait_exponential_multiplier_s": 0.01, "wait_exponential_max_s": 0.05}


def call(kind: str, method: str, url: str, **settings: Any) -> tuple[httpx.Response, float]:
    """Make one request with a fresh sync or async client; return (response, elapsed_s)."""
    started = time.monotonic()
    if kind == "sync":
        with Client(**settings) as client:
            response = client.request(method, url)
    else:

        async def run() -> httpx.Response:
            async with AsyncClient(**settings) as client:
                return await client.request(method, url)

        response = asyncio.run(run())
    return response, time.monotonic() - started


def call_expecting_retry_error(
    kind: str, method: str, url: str, **settings: Any
) -> tuple[RetryError, float]:
    started = time.monotonic()
    with pytest.raises(RetryError) as info:
        call(kind, method, url, **settings)
    return info.value, time.monotonic() - started


both = pytest.mark.parametrize("kind", ["sync", "async"])


@both
def test_failing_twice_then_succeeding_returns_the_success(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/fail/2/503")
    response, _ = call(kind, "GET", url, **FAST)
    assert response.status_code == 200
    assert http_server.hits_for(url) == 3


@both
def test_stop_max_attempt_number_limits_attempts_and_raises_with_last_response(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/status/503")
    error, _ = call_expecting_retry_error(kind, "GET", url, stop_max_attempt_number=2, **FAST)
    assert error.attempts == 2
    assert http_server.hits_for(url) == 2
    assert error.response is not None and error.status_code == 503
    assert error.error is None
    assert isinstance(error, KitError)
    assert "failed after 2 attempt(s)" in str(error)


TIMING_CASES = {
    # waits of 0.2 s: attempts at ~0, 0.2, 0.4 s; a 4th would start at 0.6 s > 0.5 s
    "stop_max_delay_s stops before the budget is exceeded": (
        dict(stop_max_attempt_number=100, stop_max_delay_s=0.5,
             wait_exponential_multiplier_s=0.2, wait_exponential_max_s=0.2),
        3, 0.35,
    ),
    # waits 0.05 + 0.1 + 0.2 = 0.35 s
    "wait_exponential_multiplier_s sets the growing waits": (
        dict(stop_max_attempt_number=4, wait_exponential_multiplier_s=0.05,
             wait_exponential_max_s=10),
        4, 0.33,
    ),
    # uncapped the waits would be 5 + 10 + 20 s; capped they are 3 x 0.05 s
    "wait_exponential_max_s caps each wait": (
        dict(stop_max_attempt_number=4, wait_exponential_multiplier_s=5,
             wait_exponential_max_s=0.05),
        4, 0.14,
    ),
}  # fmt: skip


@both
@pytest.mark.parametrize("case", list(TIMING_CASES))
def test_timing_settings_take_effect(kind: str, case: str, http_server: ScriptedServer) -> None:
    settings, expected_attempts, min_elapsed_s = TIMING_CASES[case]
    url = http_server.url("/status/503")
    error, elapsed_s = call_expecting_retry_error(kind, "GET", url, **settings)
    assert error.attempts == expected_attempts
    assert http_server.hits_for(url) == expected_attempts
    assert min_elapsed_s <= elapsed_s < 3.0


@both
def test_a_500_is_not_retried_by_default(kind: str, http_server: ScriptedServer) -> None:
    url = http_server.url("/fail/2/500")
    response, _ = call(kind, "GET", url, **FAST)
    assert response.status_code == 500
    assert http_server.hits_for(url) == 1


@both
def test_retry_by_result_decides_which_responses_are_retried(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/fail/2/500")
    response, _ = call(kind, "GET", url, retry_by_result=lambda r: r.status_code >= 500, **FAST)
    assert response.status_code == 200
    assert http_server.hits_for(url) == 3

    never = http_server.url("/status/503")
    response, _ = call(kind, "GET", never, retry_by_result=lambda r: False, **FAST)
    assert response.status_code == 503
    assert http_server.hits_for(never) == 1


@both
def test_a_read_timeout_is_retried_then_raised_with_the_last_error(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/hang")
    error, _ = call_expecting_retry_error(
        kind, "GET", url, timeout=0.2, stop_max_attempt_number=2, **FAST
    )
    assert error.attempts == 2
    assert http_server.hits_for(url) == 2
    assert isinstance(error.error, httpx.ReadTimeout)
    assert error.__cause__ is error.error
    assert error.response is None and error.status_code is None


@both
def test_retry_by_except_replaces_the_retried_exception_types(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/hang")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        call(kind, "GET", url, timeout=0.2, retry_by_except=(httpx.ConnectError,), **FAST)
    assert http_server.hits_for(url) == 1
    assert time.monotonic() - started < 3.0


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/x"
    sock.close()


@both
def test_connection_errors_are_retried_by_default(kind: str, refused_url: str) -> None:
    error, _ = call_expecting_retry_error(kind, "GET", refused_url, **FAST)
    assert error.attempts == 3
    assert isinstance(error.error, httpx.ConnectError)


@both
def test_retry_by_except_given_one_type_retries_only_that_type(
    kind: str, http_server: ScriptedServer, refused_url: str
) -> None:
    with pytest.raises(httpx.ConnectError):
        call(kind, "GET", refused_url, retry_by_except=httpx.ReadTimeout, **FAST)

    url = http_server.url("/hang")
    error, _ = call_expecting_retry_error(
        kind,
        "GET",
        url,
        timeout=0.2,
        retry_by_except=httpx.ReadTimeout,
        stop_max_attempt_number=2,
        **FAST,
    )
    assert isinstance(error.error, httpx.ReadTimeout)
    assert http_server.hits_for(url) == 2


@both
def test_retry_after_on_429_sets_the_wait(kind: str, http_server: ScriptedServer) -> None:
    url = http_server.url("/fail/1/429?retry_after=1")
    response, elapsed_s = call(kind, "GET", url, **FAST)
    assert response.status_code == 200
    assert http_server.hits_for(url) == 2
    assert 0.9 <= elapsed_s < 5.0


@both
def test_retry_after_is_capped_by_retry_after_max_s(kind: str, http_server: ScriptedServer) -> None:
    url = http_server.url("/fail/1/503?retry_after=3600")
    response, elapsed_s = call(kind, "GET", url, retry_after_max_s=0.05, **FAST)
    assert response.status_code == 200
    assert elapsed_s < 3.0


@both
def test_post_is_sent_once_unless_the_caller_opts_in(
    kind: str, http_server: ScriptedServer
) -> None:
    url = http_server.url("/fail/2/503")
    response, _ = call(kind, "POST", url, **FAST)
    assert response.status_code == 503
    assert http_server.hits_for(url) == 1

    opted_in = http_server.url("/fail/2/503")
    response, _ = call(kind, "POST", opted_in, retry_non_idempotent=True, **FAST)
    assert response.status_code == 200
    assert http_server.hits_for(opted_in) == 3


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS"])
def test_idempotent_methods_are_retried(method: str, http_server: ScriptedServer) -> None:
    url = http_server.url("/fail/1/502")
    response, _ = call("sync", method, url, **FAST)
    assert response.status_code == 200
    assert http_server.hits_for(url) == 2


def test_httpx_options_pass_through(http_server: ScriptedServer) -> None:
    transport = httpx.HTTPTransport(retries=0)
    with Client(
        base_url=http_server.base_url,
        headers={"X-Team": "ivr"},
        auth=("user", "pw"),
        timeout=2.5,
        transport=transport,
    ) as client:
        response = client.get("/echo/1")
        assert client.timeout == httpx.Timeout(2.5)
    seen = {k.lower(): v for k, v in response.json().items()}
    assert seen["x-team"] == "ivr"
    assert seen["authorization"].startswith("Basic ")


def test_a_retry_policy_object_can_be_given_instead_of_settings(
    http_server: ScriptedServer,
) -> None:
    url = http_server.url("/status/503")
    policy = RetryPolicy(stop_max_attempt_number=2, **FAST)
    with pytest.raises(RetryError) as info, Client(retry_policy=policy) as client:
        client.get(url)
    assert info.value.attempts == 2
    with pytest.raises(TypeError):
        Client(retry_policy=policy, stop_max_attempt_number=3)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="stop_max_attempt_number"):
        Client(stop_max_attempt_number=0)
    with pytest.raises(ValueError, match="wait_exponential_max_s"):
        Client(wait_exponential_max_s=-1)


def _settings(name: str, value: float) -> dict[str, Any]:
    return {name: value}


@pytest.mark.parametrize("old_name, new_name", sorted(RENAMED_RETRY_SETTINGS.items()))
def test_old_setting_names_still_work_with_a_deprecation_warning(
    old_name: str, new_name: str
) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old_name!r} is renamed {new_name!r}"):
        policy = RetryPolicy(**_settings(old_name, 0.25))
    assert getattr(policy, new_name) == 0.25
    with pytest.warns(DeprecationWarning, match=f"{old_name!r} is renamed {new_name!r}"):
        client = Client(**_settings(old_name, 0.5))
    with client:
        assert getattr(client.retry_policy, new_name) == 0.5


def test_a_setting_under_its_old_and_new_name_is_refused() -> None:
    with pytest.raises(TypeError, match="stop_max_delay_s"):
        RetryPolicy(stop_max_delay=1, stop_max_delay_s=2)
    with pytest.raises(TypeError, match="stop_max_delay_s"):
        Client(stop_max_delay=1, stop_max_delay_s=2)


def test_default_retry_exceptions_cover_timeouts_and_connection_errors() -> None:
    assert issubclass(httpx.ConnectTimeout, DEFAULT_RETRY_EXCEPTIONS)
    assert issubclass(httpx.ConnectError, DEFAULT_RETRY_EXCEPTIONS)
    assert not issubclass(httpx.UnsupportedProtocol, DEFAULT_RETRY_EXCEPTIONS)


def test_one_log_line_per_call_with_secrets_redacted(
    http_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = http_server.url("/fail/1/503") + "?access_token=s3cr3t&page=2"
    caplog.set_level(logging.INFO, logger="kit.http")
    with Client(**FAST) as client:
        client.get(
            url,
            headers={"Authorization": "Bearer s3cr3t", "Cookie": "sid=s3cr3t", "X-Ok": "v"},
        )
    records = [r for r in caplog.records if r.name == "kit.http" and r.levelno >= logging.INFO]
    assert len(records) == 1
    record = records[0]
    fields = record.__dict__["http_call"]
    assert fields["method"] == "GET"
    assert fields["status"] == 200
    assert fields["attempts"] == 2
    assert fields["elapsed_ms"] >= 0
    assert fields["request_headers"]["authorization"] == "***"
    assert fields["request_headers"]["cookie"] == "***"
    assert fields["request_headers"]["x-ok"] == "v"
    assert "access_token=***" in fields["url"] and "page=2" in fields["url"]
    assert "s3cr3t" not in record.getMessage()
    assert "s3cr3t" not in repr(fields)


def test_exhausted_retries_log_a_warning_without_secrets(
    http_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = http_server.url("/status/503") + "?api_key=s3cr3t"
    caplog.set_level(logging.INFO, logger="kit.http")
    with pytest.raises(RetryError) as info, Client(stop_max_attempt_number=2, **FAST) as c:
        c.get(url)
    assert "s3cr3t" not in str(info.value)
    warnings = [r for r in caplog.records if r.name == "kit.http" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "s3cr3t" not in warnings[0].getMessage()
    assert warnings[0].__dict__["http_call"]["error"] == "RetryError"


def test_sync_client_closes_as_context_manager(http_server: ScriptedServer) -> None:
    with Client() as client:
        assert client.get(http_server.url("/ok")).status_code == 200
    assert client.is_closed


def test_async_client_closes_as_context_manager(http_server: ScriptedServer) -> None:
    async def run() -> AsyncClient:
        async with AsyncClient() as client:
            assert (await client.get(http_server.url("/ok"))).status_code == 200
        return client

    assert asyncio.run(run()).is_closed


def test_stream_responses_are_retried_and_discarded_ones_closed(
    http_server: ScriptedServer,
) -> None:
    url = http_server.url("/fail/1/503")
    with Client(**FAST) as client, client.stream("GET", url) as response:
        assert response.read() == b"ok"
    assert http_server.hits_for(url) == 2


def test_shared_requests_instance_retries(http_server: ScriptedServer) -> None:
    url = http_server.url("/fail/1/502")
    assert requests.get(url).status_code == 200
    assert http_server.hits_for(url) == 2
    with pytest.raises(AttributeError):
        requests.close()


def test_shared_aiorequests_instance_works_across_event_loops(http_server: ScriptedServer) -> None:
    async def fetch() -> int:
        response: httpx.Response = await aiorequests.get(http_server.url("/ok"))
        return response.status_code

    assert asyncio.run(fetch()) == 200
    assert asyncio.run(fetch()) == 200


def test_aiorequests_outside_a_coroutine_says_so() -> None:
    with pytest.raises(RuntimeError, match="inside a coroutine"):
        aiorequests.get("http://127.0.0.1:1/")  # type: ignore[unused-coroutine]


def test_importing_kit_http_creates_no_client() -> None:
    code = (
        "import kit.http as h; assert len(h._shared_clients) == 0, 'a client was created at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
