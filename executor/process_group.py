"""Process groups of workers: each worker leads a group, which what its methods fork joins.

The server, the worker template and the workers each run in a group of their own, so a signal
sent to the server's group (systemd's ``KillMode=control-group``, ``docker stop``, ``timeout``)
reaches only the server, which then drains. Killing a worker's group ends the processes a method
started with it.

Availability: Unix.
"""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["kill_group"]


def kill_group(leader_pid: int, signal_number: int = signal.SIGKILL) -> None:
    """Signal every process of the group led by ``leader_pid`` (a worker and what it forked).

    Args:
        leader_pid: the worker's pid, which is its group's id.
        signal_number: SIGKILL by default; SIGTERM asks them to stop.

    Call it only while the leader is alive or not yet reaped, so that its pid names no other
    group. A group that is gone already is no error.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader_pid, signal_number)
