"""CORS: SBUSR_CORS_ORIGINS, preflights and the headers of cross-origin answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import settings as settings_module
from tests.support import SHIPPED_METHODS, ServerProcess

ALLOWED = "https://app.example"
OTHER = "https://evil.example"
TOKEN = "c0rs"
ECHO = {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}
CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
}


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, authorization",
    }


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that allows one origin, with a token."""
    process = ServerProcess(
        SHIPPED_METHODS,
        tmp_path_factory.mktemp("cors") / "server.log",
        env={"SBUSR_CORS_ORIGINS": f"{ALLOWED}, http://localhost:3000", "SBUSR_AUTH_TOKEN": TOKEN},
    )
    yield process
    process.stop()


def test_preflight_from_an_allowed_origin_needs_no_token(cors_server: ServerProcess) -> None:
    response = cors_server.http.options("/rpc", headers=preflight(ALLOWED))
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == (
        "Content-Type, Authorization, X-Request-ID, X-Timeout-Ms, Idempotency-Key"
    )
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["Vary"] == "Origin"


def test_preflight_of_a_rest_route_lists_its_methods(cors_server: ServerProcess) -> None:
    response = cors_server.http.options("/api/jobs", headers=preflight(ALLOWED, "GET"))
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    status = cors_server.http.options("/sys/status", headers=preflight(ALLOWED, "GET"))
    assert status.headers["Access-Control-Allow-Methods"] == "GET"


def test_preflight_from_another_origin_is_a_json_403_without_cors_headers(
    cors_server: ServerProcess,
) -> None:
    response = cors_server.http.options("/rpc", headers=preflight(OTHER))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == 403
    assert not CORS_HEADERS & {name.lower() for name in response.headers}


def test_options_that_is_not_a_preflight_is_still_405(cors_server: ServerProcess) -> None:
    response = cors_server.http.options("/rpc", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


def test_cross_origin_call_carries_the_cors_headers(cors_server: ServerProcess) -> None:
    response = cors_server.post(
        ECHO, headers={"Origin": ALLOWED, "Authorization": f"Bearer {TOKEN}"}
    )
    assert response.json()["result"] == "x"
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Expose-Headers"] == (
        "X-Request-ID, Retry-After, Idempotent-Replayed"
    )
    assert response.headers["Vary"] == "Origin"


def test_a_refused_cross_origin_call_is_readable_by_the_page(cors_server: ServerProcess) -> None:
    response = cors_server.post(ECHO, headers={"Origin": ALLOWED})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_rest_routes_carry_the_cors_headers_too(cors_server: ServerProcess) -> None:
    response = cors_server.http.get(
        "/sys/status", headers={"Origin": ALLOWED, "Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_call_from_another_origin_gets_no_cors_headers(cors_server: ServerProcess) -> None:
    response = cors_server.post(ECHO, headers={"Origin": OTHER, "Authorization": f"Bearer {TOKEN}"})
    assert response.json()["result"] == "x"  # served: the browser, not the server, enforces CORS
    assert not CORS_HEADERS & {name.lower() for name in response.headers}


def test_unset_means_no_origin_is_allowed(shared_server: ServerProcess) -> None:
    call = shared_server.post(ECHO, headers={"Origin": ALLOWED})
    assert call.json()["result"] == "x"
    assert not CORS_HEADERS & {name.lower() for name in call.headers}
    refused = shared_server.http.options("/rpc", headers=preflight(ALLOWED))
    assert refused.status_code == 403
    assert not CORS_HEADERS & {name.lower() for name in refused.headers}


def test_any_origin_with_a_star() -> None:
    parsed = settings_module.load({"SBUSR_CORS_ORIGINS": "*"})
    assert parsed.cors_origins == ("*",)
    from server.http.cors import CorsPolicy

    assert CorsPolicy(parsed.cors_origins).allowed_origin(OTHER) == OTHER


def test_origins_setting_is_parsed_and_checked() -> None:
    parsed = settings_module.load({"SBUSR_CORS_ORIGINS": " https://a.example/ ,http://b:8080"})
    assert parsed.cors_origins == ("https://a.example", "http://b:8080")
    assert settings_module.load({}).cors_origins == ()
    with pytest.raises(settings_module.SettingsError, match="SBUSR_CORS_ORIGINS"):
        settings_module.load({"SBUSR_CORS_ORIGINS": "app.example"})
