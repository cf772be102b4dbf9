"""Default ``pool_processes``: CPU affinity and cgroup quota (executor/cpus.py), fake files."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.cpus import available_cpus, cgroup_cpu_quota


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("text", "quota"),
    [("150000 100000\n", 1.5), ("max 100000\n", None), ("200000 100000", 2.0), ("", None)],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, text: str, quota: float | None) -> None:
    write(tmp_path, "cpu.max", text)
    assert cgroup_cpu_quota(tmp_path) == quota


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota_and_period(tmp_path: Path, folder: str) -> None:
    write(tmp_path, f"{folder}/cpu.cfs_quota_us", "300000\n")
    write(tmp_path, f"{folder}/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(tmp_path) == 3.0


def test_cgroup_v1_without_quota(tmp_path: Path) -> None:
    write(tmp_path, "cpu/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path) is None
    assert available_cpus(tmp_path, affinity_count=6) == 6


def test_the_quota_caps_the_affinity_rounded_down(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "250000 100000")
    assert available_cpus(tmp_path, affinity_count=8) == 2
    assert available_cpus(tmp_path, affinity_count=1) == 1


def test_a_quota_below_one_cpu_still_gives_one_worker(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "50000 100000")
    assert available_cpus(tmp_path, affinity_count=4) == 1


def test_the_affinity_is_read_when_not_given(tmp_path: Path) -> None:
    import os

    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))
