"""kit.config: the settings are read on first use, then kept until the cache is cleared."""

from __future__ import annotations

import pytest

from kit import config


def test_the_settings_are_read_once_then_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBUSR_REDIS_URL", "redis://first:6379/1")
    assert config.default_redis_url() == "redis://first:6379/1"
    monkeypatch.setenv("SBUSR_REDIS_URL", "redis://second:6379/2")
    assert config.default_redis_url() == "redis://first:6379/1"
    config.clear_cache()
    assert config.default_redis_url() == "redis://second:6379/2"


def test_the_defaults_apply_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SBUSR_REDIS_URL", raising=False)
    monkeypatch.delenv("SBUSR_BUS_PREFIX", raising=False)
    assert config.default_redis_url() == config.DEFAULT_REDIS_URL
    assert config.bus_prefix() == "sbusr"
