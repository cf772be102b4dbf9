"""How many CPUs this process may use: the default of ``pool_processes``.

``os.cpu_count()`` counts the machine's CPUs; a process pinned to fewer (``taskset``,
``docker --cpuset-cpus``) or held to a CPU quota (``docker --cpus``, a Kubernetes CPU limit,
systemd ``CPUQuota=``) gets less. :func:`available_cpus` takes the least of the CPU affinity
(:func:`os.sched_getaffinity`) and the cgroup quota, rounded down, at least 1 (as Go's
automaxprocs does).

The quota is read from the cgroup file system:

- v2: ``<root>/cpu.max``, ``"<quota_us> <period_us>"`` or ``"max <period_us>"`` (no quota);
- v1: ``<root>/cpu/cpu.cfs_quota_us`` (``-1``: no quota) and ``<root>/cpu/cpu.cfs_period_us``
  (also under ``cpu,cpuacct/``).

Availability: the affinity on Linux (elsewhere ``os.cpu_count()``); no cgroup files, no quota.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["CGROUP_ROOT", "available_cpus", "cgroup_cpu_quota"]

#: Where the cgroup file system is mounted (inside a container: the container's own cgroup).
CGROUP_ROOT = Path("/sys/fs/cgroup")

_V1_FOLDERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota(quota_text: str, period_text: str) -> float | None:
    """CPUs of one ``quota``/``period`` pair (microseconds each); None: no quota or unreadable."""
    try:
        quota_us, period_us = int(quota_text), int(period_text)
    except ValueError:
        return None  # "max" (v2) or garbage
    if quota_us <= 0 or period_us <= 0:
        return None  # -1 (v1): no quota
    return quota_us / period_us


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of the cgroup mounted at ``root``, in CPUs (e.g. 1.5); None when none.

    Args:
        root: the cgroup mount point (tests pass a folder of fake files).

    Returns:
        ``quota_us / period_us`` of cgroup v2 ``cpu.max``, else of cgroup v1
        ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; None when there is no quota or no
        readable file. Never raises.
    """
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        return _quota(parts[0], parts[1]) if len(parts) == 2 else None
    for folder in _V1_FOLDERS:
        quota_text = _read(root / folder / "cpu.cfs_quota_us")
        period_text = _read(root / folder / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            return _quota(quota_text, period_text)
    return None


def _affinity_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def available_cpus(cgroup_root: Path = CGROUP_ROOT, affinity_count: int | None = None) -> int:
    """CPUs this process may use: the least of its CPU affinity and its cgroup quota, >= 1.

    Args:
        cgroup_root: the cgroup mount point (see :func:`cgroup_cpu_quota`).
        affinity_count: CPUs the process may run on; None: ``len(os.sched_getaffinity(0))``.

    Returns:
        An int >= 1: ``min(affinity, floor(quota))``, or the affinity alone without a quota.
    """
    count = _affinity_count() if affinity_count is None else affinity_count
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.floor(quota))
    return max(1, count)
