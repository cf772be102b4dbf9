"""The worker template ("zygote"): a process that forks ready-made workers on request.

Started by :class:`executor.process.Spawner` as ``python -m executor.zygote SOCKET_FD``. It
imports :mod:`executor.worker` and what it needs (asyncio, jsonschema, logging, ...) once, but
never the user's methods, then waits. What a worker needs only for a rare call stays out of
the template (:mod:`catalog.openrpc`, imported by the first ``rpc.discover``): every page the
template holds is in each worker's resident memory. For each request it forks: the child runs
:func:`executor.worker.main` and imports the methods package itself, so every worker (after a
reload too) runs the code on disk at its start, at the cost of a fork instead of a new
interpreter and its imports.

Protocol on the socket (``SOCK_SEQPACKET``, one JSON object per message):

* server -> template: ``{"token": int, "args": [str, ...]}`` with two descriptors attached
  (``SCM_RIGHTS``): the worker's input and output pipe ends; ``args`` follow them on the
  worker's command line;
* template -> server: ``{"ready": true}`` once the imports are done; ``{"token", "pid"}`` (or
  ``{"token", "error"}``) per request; ``{"exited": pid, "code": int}`` when a worker ends
  (``code`` as :attr:`subprocess.Popen.returncode`: negative for a signal).

The template exits when the server closes the socket. It ignores SIGINT, like the workers.

Process groups: the template runs in a process group of its own (the server starts it so), and
every worker it forks leads a new group, which the processes a method starts join. A SIGTERM
sent to the server's group (systemd, ``docker stop``, ``timeout``) therefore reaches neither
the template nor a worker: the server decides when they stop. When a worker ends, the template
SIGKILLs what is left of its group before it reaps the worker (the pid cannot be reused until
then), so nothing a method forked outlives its worker.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback

import executor.worker
from executor.internal import load_internal_methods
from executor.process_group import kill_group

__all__ = ["main"]


def _run_worker(in_fd: int, out_fd: int, args: list[str]) -> int:
    try:
        return executor.worker.main([str(in_fd), str(out_fd), *args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1


def main(argv: list[str]) -> int:
    """Serve fork requests on the socket ``argv[0]`` until it closes; return 0."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    load_internal_methods()  # the server's own worker-side methods: not the user's code
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401  (the workers' event loop, see executor.worker)
    gc.freeze()  # what is imported now stays out of the workers' collections: fewer copied pages
    control = socket.socket(fileno=int(argv[0]))
    control.setblocking(True)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    os.set_blocking(wakeup_read, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    try:
        control.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
        _serve(control, selector, wakeup_read, wakeup_write)
    except (BrokenPipeError, ConnectionResetError):  # the server is gone
        pass
    return 0


def _serve(
    control: socket.socket, selector: selectors.BaseSelector, wakeup_read: int, wakeup_write: int
) -> None:
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                try:
                    message, fds, _flags, _address = socket.recv_fds(control, 65536, 2)
                except OSError:
                    return
                if not message:
                    return
                request = json.loads(message)
                if len(fds) != 2:
                    for fd in fds:
                        os.close(fd)
                    control.send(
                        json.dumps({"token": request["token"], "error": "no pipes"}).encode()
                    )
                    continue
                try:
                    pid = os.fork()
                except OSError as exc:
                    for fd in fds:
                        os.close(fd)
                    control.send(
                        json.dumps({"token": request["token"], "error": str(exc)}).encode()
                    )
                    continue
                if pid == 0:  # the worker
                    code = 1
                    try:
                        os.setpgid(0, 0)
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        selector.close()
                        control.close()
                        os.close(wakeup_read)
                        os.close(wakeup_write)
                        code = _run_worker(fds[0], fds[1], request["args"])
                    finally:
                        sys.stderr.flush()
                        os._exit(code)
                with contextlib.suppress(OSError):  # the child does it too: whoever runs first
                    os.setpgid(pid, pid)
                for fd in fds:
                    os.close(fd)
                control.send(json.dumps({"token": request["token"], "pid": pid}).encode())
            else:
                try:
                    while os.read(wakeup_read, 512):
                        pass
                except BlockingIOError:
                    pass
                _report_exits(control)


def _report_exits(control: socket.socket) -> None:
    while True:
        try:
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if ended is None:
            return
        kill_group(ended.si_pid)  # the worker is a zombie: its pid is not reused yet
        pid, status = os.waitpid(ended.si_pid, 0)
        code = os.waitstatus_to_exitcode(status)
        control.send(json.dumps({"exited": pid, "code": code}).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
