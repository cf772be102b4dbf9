"""``GET /ready``: the readiness probe, with and without a reachable Redis (design.md)."""

from __future__ import annotations

from collections.abc import Callable

from tests.support import ServerProcess, free_port


def test_ready_with_the_bus_on_and_redis_reachable(
    bus_server: Callable[..., ServerProcess],
) -> None:
    server = bus_server(env={"SBUSR_AUTH_TOKEN": "secret"})
    response = server.http.get("/ready")  # a probe: no token needed
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"workers": "ok", "bus": "ok"}
    assert body["not_ready"] == []
    assert body["generation"] == 1


def test_ready_is_503_naming_the_bus_when_redis_cannot_be_reached(
    start_server: Callable[..., ServerProcess],
) -> None:
    closed_port = free_port()
    server = start_server(
        env={"SBUSR_REDIS_URL": f"redis://127.0.0.1:{closed_port}/0", "SBUSR_SCHEDULER": "0"}
    )
    assert server.http.get("/health_check").status_code == 200  # alive, yet not ready
    response = server.http.get("/ready")
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "not ready"
    assert body["not_ready"] == ["bus"]
    assert body["checks"]["workers"] == "ok"
    assert "Redis cannot be reached" in body["checks"]["bus"]
    assert "not ready: bus: Redis cannot be reached" in server.log()


def test_ready_without_the_bus_checks_the_workers_only(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    response = server.http.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"workers": "ok", "bus": "off"}


def test_not_ready_is_logged_once_however_often_probed(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        env={"SBUSR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SBUSR_SCHEDULER": "0"}
    )
    for _ in range(3):
        assert server.http.get("/ready").status_code == 503
    assert server.log().count("not ready: bus: Redis cannot be reached") == 1
