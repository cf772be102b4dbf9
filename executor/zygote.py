"""The worker template ("zygote"): a process that forks ready-made workers on request.

Started by :class:`executor.process.Spawner` as ``python -m executor.zygote SOCKET_FD``. It
imports :mod:`executor.worker` and what it needs (asyncio, jsonschema, logging, ...) once, but
never the user's methods, then waits. For each request it forks: the child runs
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
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        control.send(json.dumps({"exited": pid, "code": code}).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
