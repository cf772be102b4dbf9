"""The worker templates ("zygotes"): processes that fork ready-made workers on request.

Started by :class:`executor.process.Spawner` as ``python -m executor.zygote SOCKET_FD``: the
base template. It imports :mod:`executor.worker` and what it needs (asyncio, jsonschema,
logging, ...) once, but never the user's methods, then waits. For each generation of workers
the server asks it for a *generation template*: a fork that imports the methods package (and
what it imports at load, e.g. pydantic) fresh from disk, once, then forks that generation's
workers. A worker (at a generation's start, or replacing one recycled, crashed or timed out)
therefore costs a fork and no import, and every generation runs the code on disk at its start.
When no generation template is there, the base template forks a worker that imports the
methods package itself (the server asks so by sending no ``"preloaded"``). What a worker needs
only for a rare call stays out of every template (:mod:`catalog.openrpc`, imported by the first
``rpc.discover``): every page a template holds is in each worker's resident memory.

Protocol on a template's socket (``SOCK_SEQPACKET``, one JSON object per message):

* server -> template: ``{"token": int, "args": [str, ...]}`` with two descriptors attached
  (``SCM_RIGHTS``): the worker's input and output pipe ends; ``args`` follow them on the
  worker's command line. To the base template also ``{"token": int, "template": [METHODS_DIR,
  LOG_LEVEL]}`` with one descriptor: the socket of a new generation template;
* template -> server: ``{"ready": true, "pid": int}`` once the imports are done (a generation
  template adds ``"errors"`` and ``"code"`` as in a worker's READY frame, and ``"logs"``: the
  payloads of the LOG records of its import, see :mod:`executor.framing`); ``{"token",
  "pid"}`` (or ``{"token", "error"}``) per request; ``{"exited": pid, "code": int}`` when a
  child ends (``code`` as :attr:`subprocess.Popen.returncode`: negative for a signal).

A template exits when the server closes its socket. It ignores SIGINT, like the workers.

Forking preloaded code means that what a methods module does at import is shared by every
worker of the generation: module-level code must open no connection, thread or event loop
(docs/methods.md); kit's clients and pools start empty in each fork (``kit._process_cache``).

Process groups: the base template runs in a process group of its own (the server starts it so),
and every generation template and worker it forks leads a new group, which the processes a
method starts join. A SIGTERM sent to the server's group (systemd, ``docker stop``,
``timeout``) therefore reaches neither a template nor a worker: the server decides when they
stop. When a child ends, its template SIGKILLs what is left of its group before it reaps it (the
pid cannot be reused until then), so nothing a method forked outlives its worker.
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
from pathlib import Path
from typing import Any

import executor.worker
from executor.internal import load_internal_methods
from executor.process_group import kill_group

__all__ = ["main"]


def _run_worker(in_fd: int, out_fd: int, args: list[str], preloaded: dict[str, Any] | None) -> int:
    try:
        return executor.worker.main([str(in_fd), str(out_fd), *args], preloaded)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1


def _run_generation(control_fd: int, methods_dir: str, log_level: str) -> int:
    """A generation template: import the methods package, then serve fork requests."""
    control = socket.socket(fileno=control_fd)
    preloaded = executor.worker.preload(Path(methods_dir), int(log_level))
    logs = preloaded.pop("logs")
    gc.freeze()  # the methods' objects too: fewer pages copied into each worker
    _serve_forever(control, {**preloaded, "logs": logs}, preloaded)
    return 0


def main(argv: list[str]) -> int:
    """Serve fork requests on the socket ``argv[0]`` until it closes; return 0."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    load_internal_methods()  # the server's own worker-side methods: not the user's code
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401  (the workers' event loop, see executor.worker)
    gc.freeze()  # what is imported now stays out of the workers' collections: fewer copied pages
    _serve_forever(socket.socket(fileno=int(argv[0])), {}, None)
    return 0


def _serve_forever(
    control: socket.socket, facts: dict[str, Any], preloaded: dict[str, Any] | None
) -> None:
    """Say ready (with ``facts``) on ``control``, then fork on request until it closes.

    ``preloaded``: the generation's import outcome (``{"errors", "code"}``) handed to each
    worker forked here, which then imports nothing; None in the base template.
    """
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
        control.send(json.dumps({"ready": True, "pid": os.getpid(), **facts}).encode())
        _serve(control, selector, wakeup_read, wakeup_write, preloaded)
    except (BrokenPipeError, ConnectionResetError):  # the server is gone
        pass


def _serve(
    control: socket.socket,
    selector: selectors.BaseSelector,
    wakeup_read: int,
    wakeup_write: int,
    preloaded: dict[str, Any] | None,
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
                template = request.get("template")
                if len(fds) != (1 if template else 2):
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
                if pid == 0:  # the worker, or a generation template
                    code = 1
                    try:
                        os.setpgid(0, 0)
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        selector.close()
                        control.close()
                        os.close(wakeup_read)
                        os.close(wakeup_write)
                        if template:
                            code = _run_generation(fds[0], *template)
                        else:
                            code = _run_worker(fds[0], fds[1], request["args"], preloaded)
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
