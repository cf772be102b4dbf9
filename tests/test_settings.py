"""Unit tests of settings.py: defaults, SBUSR_* overrides, errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

import settings
from executor.cpus import available_cpus


def test_defaults_follow_the_contract() -> None:
    loaded = settings.load({})
    assert (loaded.host, loaded.port) == ("127.0.0.1", 8080)
    assert loaded.pool_processes == available_cpus()
    assert loaded.pool_maxtasksperchild == 1000
    assert loaded.queue_maxsize == 1000
    assert loaded.rpc_timeout_s == 30
    assert loaded.redis_url is None and loaded.auth_token is None
    assert loaded.database_url.startswith("sqlite:///") and "/data/" in loaded.database_url
    assert loaded.flow_ack_timeout_s == 15 and loaded.notify_ttl_ms == 10000
    assert loaded.debug is False
    assert loaded.max_body_bytes == 1024 * 1024 and loaded.max_batch == 100
    assert loaded.bus_prefix == "sbusr"
    assert (loaded.claim_idle_ms, loaded.max_deliveries, loaded.peer_ttl_ms) == (30000, 5, 15000)
    assert loaded.access_log is True
    assert loaded.methods_dir == Path(settings.__file__).resolve().parent / "methods"


def test_every_setting_is_overridden_by_its_variable() -> None:
    loaded = settings.load(
        {
            "SBUSR_HOST": "0.0.0.0",
            "SBUSR_PORT": "9000",
            "SBUSR_METHODS_DIR": "/tmp/m",
            "SBUSR_POOL_PROCESSES": "3",
            "SBUSR_POOL_MAXTASKSPERCHILD": "0",
            "SBUSR_QUEUE_MAXSIZE": "7",
            "SBUSR_RPC_TIMEOUT": "1.5",
            "SBUSR_REDIS_URL": "redis://127.0.0.1:6379/3",
            "SBUSR_DATABASE_URL": "sqlite:///x.db",
            "SBUSR_AUTH_TOKEN": "s3cret",
            "SBUSR_FLOW_ACK_TIMEOUT": "2",
            "SBUSR_NOTIFY_TTL_MS": "500",
            "SBUSR_DEBUG": "1",
            "SBUSR_MAX_BODY_BYTES": "10",
            "SBUSR_MAX_BATCH": "5",
            "SBUSR_BUS_PREFIX": "t1",
            "SBUSR_CLAIM_IDLE_MS": "100",
            "SBUSR_MAX_DELIVERIES": "2",
            "SBUSR_PEER_TTL_MS": "300",
            "SBUSR_ACCESS_LOG": "off",
        }
    )
    assert (loaded.host, loaded.port, loaded.methods_dir) == ("0.0.0.0", 9000, Path("/tmp/m"))
    assert (loaded.pool_processes, loaded.pool_maxtasksperchild, loaded.queue_maxsize) == (3, 0, 7)
    assert loaded.rpc_timeout_s == 1.5 and loaded.redis_url == "redis://127.0.0.1:6379/3"
    assert loaded.database_url == "sqlite:///x.db" and loaded.auth_token == "s3cret"
    assert (loaded.flow_ack_timeout_s, loaded.notify_ttl_ms, loaded.debug) == (2, 500, True)
    assert (loaded.max_body_bytes, loaded.max_batch, loaded.bus_prefix) == (10, 5, "t1")
    assert (loaded.claim_idle_ms, loaded.max_deliveries, loaded.peer_ttl_ms) == (100, 2, 300)
    assert loaded.access_log is False


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SBUSR_PORT", "http"),
        ("SBUSR_PORT", "70000"),
        ("SBUSR_POOL_PROCESSES", "0"),
        ("SBUSR_RPC_TIMEOUT", "-1"),
        ("SBUSR_DEBUG", "maybe"),
        ("SBUSR_QUEUE_MAXSIZE", "1.5"),
        ("SBUSR_BUS_PREFIX", ""),
        ("SBUSR_LOG_FORMAT", "xml"),
    ],
)
def test_invalid_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({variable: value})
    assert str(caught.value).startswith(f"{variable}={value!r}:")


def test_the_token_never_shows_in_repr() -> None:
    assert "s3cret" not in repr(settings.load({"SBUSR_AUTH_TOKEN": "s3cret"}))


def test_passwords_in_urls_never_show_in_repr() -> None:
    shown = repr(
        settings.load(
            {
                "SBUSR_REDIS_URL": "redis://:r3dis@127.0.0.1:6379/1",
                "SBUSR_DATABASE_URL": "mysql+pymysql://root:db-pw@127.0.0.1/test",
            }
        )
    )
    assert "r3dis" not in shown and "db-pw" not in shown
    assert (
        "redis://:***@127.0.0.1:6379/1" in shown
        and "mysql+pymysql://root:***@127.0.0.1/test" in shown
    )


def test_unknown_variables_name_the_closest_setting() -> None:
    environ = {
        "SBUSR_POOL_PROCESS": "4",
        "SBUSR_PORT": "80",
        "SBUSR_TEST_REDIS_URL": "redis://x",
        "SBUSR_BENCH_CELERY_URL": "redis://y",
        "SBUSR_QQQ": "1",
        "PATH": "/bin",
    }
    assert settings.unknown_variables(environ) == [
        ("SBUSR_POOL_PROCESS", "SBUSR_POOL_PROCESSES"),
        ("SBUSR_QQQ", None),
    ]


def test_a_non_integer_names_what_was_expected() -> None:
    with pytest.raises(settings.SettingsError, match=r"^SBUSR_PORT='abc': expected an integer$"):
        settings.load({"SBUSR_PORT": "abc"})
