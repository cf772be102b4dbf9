"""Worker memory: its resident size, and the hard cap on what it may allocate.

A worker whose resident set grows past ``SBUSR_WORKER_MAX_MEMORY_MB`` is recycled by the pool
the graceful way (its replacement starts first). That check runs every second or so; a single
huge allocation is faster, so each worker also gets a hard cap: ``RLIMIT_DATA`` (its heap and
private writable mappings, thread stacks included) at :func:`hard_cap_bytes`. An allocation
past the cap fails in the method (``MemoryError``, answered -32000) instead of taking the
machine's memory.

Availability: Linux (``/proc/<pid>/statm``, ``prlimit``).
"""

from __future__ import annotations

import logging
import os
import resource

__all__ = ["apply_hard_cap", "hard_cap_bytes", "resident_bytes"]

logger = logging.getLogger(__name__)

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
#: the stack a thread reserves when the stack limit is unlimited (glibc's default), bytes
_DEFAULT_STACK_BYTES = 8 * 1024 * 1024


def resident_bytes(pid: int) -> int | None:
    """The resident set size of process ``pid``, bytes; None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
        return int(fields[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


def hard_cap_bytes(max_memory_bytes: int, threads: int) -> int:
    """The hard cap of a worker: twice ``max_memory_bytes`` plus a stack per thread, bytes.

    Args:
        max_memory_bytes: the recycling limit (``SBUSR_WORKER_MAX_MEMORY_MB`` in bytes), > 0.
        threads: most threads the worker runs calls in (``SBUSR_WORKER_CONCURRENCY``).

    Thread stacks count against ``RLIMIT_DATA`` whole (``RLIMIT_STACK``, 8 MiB by default,
    each), touched or not, so they are added on top: the cap bounds what methods allocate.
    Example: 512 MiB and 4 threads with 8 MiB stacks -> 1,056 MiB.
    """
    stack_bytes = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if stack_bytes <= 0 or stack_bytes == resource.RLIM_INFINITY:
        stack_bytes = _DEFAULT_STACK_BYTES
    return 2 * max_memory_bytes + threads * stack_bytes


def apply_hard_cap(pid: int, cap_bytes: int) -> None:
    """Set ``RLIMIT_DATA`` of process ``pid`` to ``cap_bytes`` (soft and hard).

    A process that is gone, or a limit the system refuses, is logged and left as it is.
    """
    try:
        resource.prlimit(pid, resource.RLIMIT_DATA, (cap_bytes, cap_bytes))
    except (OSError, ValueError) as exc:
        logger.warning("cannot cap the memory of worker %d: %s", pid, exc)
