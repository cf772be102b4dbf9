"""One worker process as the server sees it: its two pipes, its process, its frames.

:class:`WorkerProcess` starts a worker, writes frames to it without ever blocking the event loop
(what the pipe does not take at once is buffered and written when it drains), cuts what the
worker writes back into events for its owner, turns LOG frames into records of this process's
loggers, and reports the exit (exit code or signal) once. It holds no policy: the pool decides
what to send, when to stop a worker and what its exit means.

Workers are forked from template processes (:mod:`executor.zygote`): a base template has
imported what a worker needs, but none of the user's code; it forks one template per
generation, which imports the methods package once, and that one forks the generation's
workers. A worker start is then a fork (a few milliseconds) where a fresh interpreter and a
fresh import cost a hundred or more. When a generation's template is not there, its workers
are forked from the base template and import the methods themselves; when that is not there
either (still starting, or it died), a worker is started as ``python -m executor.worker``
instead, and a new base template is started. Exits are seen through a ``pidfd``; the exit
status of a forked worker comes from the template, its parent.

Each worker leads a process group of its own, and the template runs in another
(:mod:`executor.process_group`): a SIGTERM to the server's group reaches neither, and a worker is
killed with its whole group, so the processes its methods started end with it.

Availability: Linux (``os.pidfd_open``, ``socket.send_fds``).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from executor import framing
from executor.process_group import kill_group

__all__ = [
    "OnEvent",
    "OnExit",
    "Spawner",
    "WorkerProcess",
    "exit_facts",
    "log_record_fields",
    "replay_log_record",
]

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
READ_SIZE = 1 << 18
#: frames queued for one worker in one loop turn that are written at once, not at its end
COALESCE_FRAMES = 4
#: how long the exit status of a forked worker may lag behind its exit, seconds
EXIT_STATUS_WAIT_S = 1.0
#: how long a fork request may take before the template is given up, seconds
FORK_TIMEOUT_S = 5.0
#: how long a new template may take to import what workers need, seconds
TEMPLATE_START_TIMEOUT_S = 30.0
#: least time between two template starts, seconds
TEMPLATE_RESTART_S = 5.0
#: the largest message read from a template's socket, bytes (a generation template's
#: "ready" carries the log records of its import)
MESSAGE_SIZE = 1 << 18

#: ``on_event(kind, call_id, payload)`` for RESULT, ERROR, READY and BLOCKED frames
OnEvent = Callable[[int, int, bytes], None]
#: ``on_exit(facts)``: the process ended; facts as :func:`exit_facts` returns them
OnExit = Callable[[dict[str, Any]], None]


def log_record_fields(payload: bytes) -> dict[str, Any] | None:
    """The attributes of a LOG frame's record, fit for :func:`logging.makeLogRecord`.

    Args:
        payload: the frame's payload, a JSON object (see :mod:`executor.framing`).

    Returns:
        The fields, or None when the payload is not a JSON object with a string ``name`` and
        ``msg`` and an integer ``levelno``. Keys that would shadow a method or class attribute of
        :class:`logging.LogRecord` are dropped, and ``args``/``exc_info`` cleared: the record
        carries data, never behaviour.
    """
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    if not (
        isinstance(fields, dict)
        and isinstance(fields.get("name"), str)
        and isinstance(fields.get("msg"), str)
        and type(fields.get("levelno")) is int
    ):
        return None
    record_fields = {
        key: value for key, value in fields.items() if not hasattr(logging.LogRecord, key)
    }
    record_fields["args"] = None
    record_fields["exc_info"] = None
    return record_fields


def replay_log_record(payload: bytes) -> bool:
    """Hand the record of a LOG payload to this process's logger of its name (data only).

    Returns:
        False when the payload is unreadable (see :func:`log_record_fields`), else True.
    """
    fields = log_record_fields(payload)
    if fields is None:
        return False
    record = logging.makeLogRecord(fields)
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)
    return True


def exit_facts(pid: int, returncode: int | None) -> dict[str, Any]:
    """Describe an exit for ``error.data``: ``{"pid", "exitcode"}`` or ``{"pid", "signal"}``.

    ``returncode`` as :attr:`subprocess.Popen.returncode` (negative: the signal number; None:
    unknown, shown as ``"exitcode": null``).
    """
    facts: dict[str, Any] = {"pid": pid}
    if returncode is None or returncode >= 0:
        facts["exitcode"] = returncode
    else:
        try:
            facts["signal"] = signal.Signals(-returncode).name
        except ValueError:
            facts["signal"] = -returncode
    return facts


class _Child(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def when_known(self, callback: Callable[[], None]) -> bool: ...

    def end_group(self) -> None: ...


class _PopenChild:
    """A worker started as its own interpreter: this process is its parent."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        if self.process.returncode is None:  # not reaped: the pid still names its group
            kill_group(self.pid)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def when_known(self, callback: Callable[[], None]) -> bool:
        return False  # poll() knows as soon as the process is gone

    def end_group(self) -> None:
        """The worker exited: kill what is left of its group before it is reaped."""
        if self.process.returncode is None:
            kill_group(self.pid)


class _ForkedChild:
    """A worker forked by the template: the template reports its exit status."""

    def __init__(self, template: _Template, pid: int) -> None:
        self.template = template
        self.pid = pid
        self.returncode: int | None = None
        self.callback: Callable[[], None] | None = None

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:  # not reaped by the template: the pid names its group
            kill_group(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def when_known(self, callback: Callable[[], None]) -> bool:
        if not self.template.alive:
            return False
        self.callback = callback
        return True

    def end_group(self) -> None:
        """Nothing to do: the template kills what is left of the group before it reaps."""

    def exited(self, returncode: int) -> None:
        self.returncode = returncode
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class _Template:
    """The server's end of one template process (:mod:`executor.zygote`).

    Args:
        loop: the server's event loop.
        control: this end of the template's socket.
        pid: the template's process id.
        name: what log lines call it.
        process: the template when this process started it (the base template), else None.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        control: socket.socket,
        pid: int,
        name: str,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.loop = loop
        self.pid = pid
        self.name = name
        self.process = process
        self.started_at = time.monotonic()
        self.socket = control
        self.socket.setblocking(False)
        self.ready = False
        self.alive = True
        self.retiring = False  # closed once its last child has ended
        self.facts: dict[str, Any] = {}  # its "ready" message
        self.settled = asyncio.Event()  # set once ready, or gone
        self.children: dict[int, _ForkedChild] = {}
        self._requests = 0
        loop.add_reader(self.socket.fileno(), self._on_readable)

    @classmethod
    def start(cls, loop: asyncio.AbstractEventLoop) -> _Template:
        """Start the base template, ``python -m executor.zygote``. Raises: OSError."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "executor.zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                cwd=PROJECT_DIR,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(loop, ours, process.pid, "the worker template", process)

    def fork(self, in_fd: int, out_fd: int, args: list[str]) -> _ForkedChild:
        """Ask the template for a worker on the pipe ends ``in_fd``/``out_fd``.

        Blocks until the template answered with the pid (a fork: milliseconds).

        Raises:
            OSError: the template is gone or did not answer within :data:`FORK_TIMEOUT_S`.
        """
        return self._request({"args": args}, [in_fd, out_fd])

    def fork_template(self, generation: int, methods_dir: str, log_level: int) -> _Template:
        """Ask the (base) template for the template of ``generation``, which imports the
        methods package in ``methods_dir``; it is ready when its ``settled`` event is set.

        Raises:
            OSError: as :meth:`fork`.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            child = self._request({"template": [methods_dir, str(log_level)]}, [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Template(self.loop, ours, child.pid, f"the template of generation {generation}")

    def _request(self, fields: dict[str, Any], fds: list[int]) -> _ForkedChild:
        self._requests += 1
        token = self._requests
        request = json.dumps({"token": token, **fields}).encode()
        self.socket.settimeout(FORK_TIMEOUT_S)
        try:
            socket.send_fds(self.socket, [request], fds)
            while True:
                message = self.socket.recv(MESSAGE_SIZE)
                if not message:
                    raise ConnectionResetError(f"{self.name} exited")
                facts = json.loads(message)
                if facts.get("token") == token:
                    if "pid" not in facts:
                        raise ChildProcessError(facts.get("error", "fork failed"))
                    child = _ForkedChild(self, facts["pid"])
                    self.children[child.pid] = child
                    return child
                self._handle(facts)
        except (OSError, ValueError):
            self.close()
            raise
        finally:
            if self.alive:
                self.socket.setblocking(False)

    def _on_readable(self) -> None:
        while self.alive:
            try:
                message = self.socket.recv(MESSAGE_SIZE)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                if not self.retiring:
                    logger.warning(
                        "%s (%d) exited; workers start slower until a new one is ready",
                        self.name,
                        self.pid,
                    )
                self.close()
                return
            self._handle(json.loads(message))

    def _handle(self, facts: dict[str, Any]) -> None:
        if "exited" in facts:
            child = self.children.pop(facts["exited"], None)
            if child is not None:
                child.exited(facts["code"])
            if self.retiring and not self.children:
                self.close()
        elif facts.get("ready"):
            self.facts = facts
            self.ready = True
            self.settled.set()

    def retire(self) -> None:
        """Fork no more: close the template once the children it forked have all ended (it
        reports their exits until then)."""
        self.retiring = True
        self.ready = False
        if not self.children:
            self.close()

    def kill(self) -> None:
        """SIGKILL the template (e.g. stuck importing) and stop using it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Stop using the template; it exits when its socket closes."""
        if not self.alive:
            return
        self.alive = False
        self.ready = False
        self.settled.set()
        self.loop.remove_reader(self.socket.fileno())
        self.socket.close()
        for child in list(self.children.values()):  # their status cannot come any more
            callback, child.callback = child.callback, None
            if callback is not None:
                callback()
        self.children.clear()


class Spawner:
    """Starts worker processes: forked from a template when one is ready, else from scratch.

    The base template (started by :meth:`start`) imports no user code. Each generation of
    workers gets its own template (:meth:`start_generation`), forked from the base one, which
    imports the methods package once: its workers, and the replacements of those recycled or
    crashed, are bare forks of it. When a generation has no template, its workers are forked
    from the base template and import the methods themselves; when neither is there, each is a
    new interpreter (and a new base template is started).

    Args:
        loop: the server's event loop.
        use_template: fork workers from a template process (False: always a new interpreter).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, use_template: bool = True) -> None:
        self.loop = loop
        self.use_template = use_template
        self._template: _Template | None = None
        self._generations: dict[int, _Template] = {}  # generation -> its template
        self._retiring: set[_Template] = set()  # templates of past generations, still reaping
        self.forked = 0
        self.started = 0

    async def start(self) -> None:
        """Start the template; wait until it is ready (at most :data:`TEMPLATE_START_TIMEOUT_S`)."""
        if not self.use_template:
            return
        template = self._new_template()
        if template is None:
            return
        try:
            await asyncio.wait_for(template.settled.wait(), TEMPLATE_START_TIMEOUT_S)
        except TimeoutError:
            logger.warning("the worker template is not ready; starting workers without it")

    def _new_template(self) -> _Template | None:
        try:
            self._template = _Template.start(self.loop)
        except OSError as exc:
            logger.error("cannot start the worker template: %s", exc)
            self._template = None
        return self._template

    async def start_generation(
        self, generation: int, methods_dir: Path, log_level: int, timeout_s: float
    ) -> list[dict[str, str]] | None:
        """Start the template of ``generation``: it imports the methods package afresh.

        The log records of the import are logged here, once.

        Args:
            generation: the generation's number (:meth:`spawn` takes it).
            methods_dir: folder of the methods package.
            log_level: level of the root logger during the import (a :mod:`logging` number).
            timeout_s: longest time the import may take, seconds.

        Returns:
            ``[]`` when the package imported cleanly; the import errors (``{"module",
            "type", "message"}`` each, as in a READY frame: the template is then dropped); None
            when no template could be started (the generation's workers import the methods
            themselves).
        """
        base = self._template
        if base is None or not base.alive or not base.ready:
            return None
        try:
            template = base.fork_template(generation, str(methods_dir), log_level)
        except (OSError, ValueError) as exc:
            logger.warning("cannot start the template of generation %d: %s", generation, exc)
            return None
        try:
            await asyncio.wait_for(template.settled.wait(), timeout_s)
        except TimeoutError:
            template.kill()
            message = f"the methods did not import in {timeout_s:.0f} s"
            return [{"module": "methods", "type": "TimeoutError", "message": message}]
        if not template.ready:
            message = "the process importing the methods exited"
            return [{"module": "methods", "type": "ChildProcessError", "message": message}]
        for payload in template.facts.get("logs") or []:
            replay_log_record(str(payload).encode())
        errors: list[dict[str, str]] = template.facts.get("errors") or []
        if errors:
            template.close()
            return errors
        self._generations[generation] = template
        return []

    def end_generation(self, generation: int) -> None:
        """The generation is over: its template forks no more and ends after its workers."""
        template = self._generations.pop(generation, None)
        if template is not None:
            self._retiring = {t for t in self._retiring if t.alive}
            template.retire()
            if template.alive:
                self._retiring.add(template)

    def spawn(
        self, in_fd: int, out_fd: int, args: list[str], generation: int | None = None
    ) -> _Child:
        """Start a worker on the pipe ends ``in_fd`` (its input) and ``out_fd`` (its output).

        ``args`` follow the two descriptors on the worker's command line (see
        :func:`executor.worker.main`). The caller closes its copies of both ends (a
        :class:`WorkerProcess` keeps the input's read end until the worker ends). A worker of a
        ``generation`` with a template is forked from it, the methods already imported.

        Raises:
            OSError: no process could be started; TimeoutError: a template did not answer in
                time, so it may have forked a worker on these pipe ends all the same: none is
                started on them (a second one would share the worker's pipes).
        """
        sources = []  # the templates to fork from, the generation's own first
        preloaded = self._generations.get(generation) if generation is not None else None
        if preloaded is not None and preloaded.alive:
            sources.append(preloaded)
        template = self._template
        if template is not None and template.alive and template.ready:
            sources.append(template)
        for source in sources:
            try:
                child = source.fork(in_fd, out_fd, args)
                self.forked += 1
                return child
            except TimeoutError:
                raise
            except (OSError, ValueError) as exc:
                logger.warning("%s failed (%s); starting a worker without it", source.name, exc)
        template_gone = self.use_template and (template is None or not template.alive)
        if template_gone and (
            template is None or time.monotonic() - template.started_at > TEMPLATE_RESTART_S
        ):
            self._new_template()
        process = subprocess.Popen(
            [sys.executable, "-m", "executor.worker", str(in_fd), str(out_fd), *args],
            pass_fds=(in_fd, out_fd),
            cwd=PROJECT_DIR,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        self.started += 1
        return _PopenChild(process)

    def close(self) -> None:
        """Stop the templates (running workers are not affected)."""
        for template in [*self._generations.values(), *self._retiring]:
            template.close()
        self._generations.clear()
        self._retiring.clear()
        if self._template is not None:
            self._template.close()
            process = self._template.process
            assert process is not None
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._template = None


class WorkerProcess:
    """One worker process and its pipes, driven by the event loop.

    Args:
        spawner: starts the process.
        args: the worker's arguments after the two pipe descriptors.
        on_event: told of every RESULT, ERROR, READY and BLOCKED frame, in order.
        on_exit: called once, after the last frame, when the process has ended.
        max_frame_bytes: the longest frame the worker may send, bytes (0: no limit); one
            announcing more is never buffered: the worker is killed as broken. The pool sets
            it to the worker's memory cap, which no frame the worker built can exceed.
        generation: the worker's generation (see :meth:`Spawner.spawn`), or None.

    Raises:
        OSError: the process could not be started.

    Attributes:
        pid: the worker's process id.
        spawned_at: ``time.monotonic()`` when it was started, seconds.
        bytes_sent: bytes handed to :meth:`send`: the offset where the last frame ends in the
            worker's input.
        bytes_taken: once the process ended, the bytes of its input the worker had read (the
            rest was still in the pipe); a call whose frame ends past it never started. None
            until then.
    """

    def __init__(
        self,
        spawner: Spawner,
        args: list[str],
        on_event: OnEvent,
        on_exit: OnExit,
        max_frame_bytes: int = 0,
        generation: int | None = None,
    ) -> None:
        self.loop = spawner.loop
        self.on_event = on_event
        self.on_exit = on_exit
        self.max_frame_bytes = max_frame_bytes
        self._refusing = False
        self.spawned_at = time.monotonic()
        to_worker_read, to_worker = os.pipe()
        from_worker, from_worker_write = os.pipe()
        try:
            self.child = spawner.spawn(to_worker_read, from_worker_write, args, generation)
        except BaseException:
            os.close(to_worker_read)
            os.close(to_worker)
            os.close(from_worker)
            raise
        finally:
            os.close(from_worker_write)
        self.pid = self.child.pid
        self.to_worker = to_worker
        self.from_worker = from_worker
        #: our copy of the worker's input read end: never read, only asked at the end how many
        #: bytes the worker left unread (see :attr:`bytes_taken`)
        self._to_worker_read = to_worker_read
        os.set_blocking(to_worker, False)
        os.set_blocking(from_worker, False)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:  # gone already (and reaped): nothing to watch
            os.close(to_worker_read)
            os.close(to_worker)
            os.close(from_worker)
            self.child.kill()
            raise
        self.bytes_sent = 0
        self.bytes_taken: int | None = None
        self.returncode: int | None = None
        self.ended = False
        self._read_buffer: bytes | bytearray = b""
        self._write_buffer = bytearray()
        self._frames_waiting = 0
        self._flush_scheduled = False
        self._pipe_full = False
        self._exit_timer: asyncio.TimerHandle | None = None
        self.loop.add_reader(from_worker, self._on_readable)
        self.loop.add_reader(self.pidfd, self._on_pidfd)

    # ------------------------------------------------------------------ frames out
    def send(self, data: bytes) -> None:
        """Write ``data`` (whole frames) to the worker: the first frame of a loop turn at once,
        the later ones of the same turn together.

        Under load many calls leave in one turn; writing them in one system call, which the
        worker reads in one, saves a write, a read and a wake-up of the worker per call. The
        first frame of a turn is written at once, so that a lone call never waits and calls
        of one turn are not all started together (and answered together); the frames queued
        after it leave at the end of the turn, or at once when :data:`COALESCE_FRAMES` wait.
        What the pipe does not take is written when it drains. Ignored once the input is
        closed or the worker is gone.
        """
        if self.to_worker < 0:
            return
        self.bytes_sent += len(data)
        self._write_buffer += data
        self._frames_waiting += 1
        if self._pipe_full:
            return
        if not self._flush_scheduled:  # the first frame of this turn
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
            self._write()
        elif self._frames_waiting >= COALESCE_FRAMES:
            self._write()

    def _flush(self) -> None:
        """The end of the turn: write the frames queued since its first."""
        self._flush_scheduled = False
        self._write()

    def _write(self) -> None:
        """Write what waits; when the pipe is full, the rest waits for :meth:`_on_writable`."""
        if self.to_worker < 0 or self._pipe_full or not self._write_buffer:
            return
        self._frames_waiting = 0
        try:
            written = os.write(self.to_worker, self._write_buffer)
        except BlockingIOError:
            written = 0
        except OSError:  # the worker is gone; its exit tells the owner
            self._drop_unwritten()
            return
        del self._write_buffer[:written]
        if self._write_buffer:
            self._pipe_full = True
            self.loop.add_writer(self.to_worker, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self.to_worker, self._write_buffer)
        except BlockingIOError:
            return
        except OSError:  # the worker is gone; its exit tells the owner
            written = 0
            self._drop_unwritten()
        del self._write_buffer[:written]
        if not self._write_buffer:
            self._pipe_full = False
            self._frames_waiting = 0
            self.loop.remove_writer(self.to_worker)

    def close_input(self) -> None:
        """Close the worker's input: it finishes the calls it runs, then exits."""
        if self.to_worker >= 0:
            self._write()  # frames queued this turn (a withdraw, a cancel) still leave
            if self._pipe_full:
                self.loop.remove_writer(self.to_worker)
            self._drop_unwritten()
            os.close(self.to_worker)
            self.to_worker = -1

    def _drop_unwritten(self) -> None:
        """Forget the frames not written yet: the worker never gets them (nor counts them read)."""
        self.bytes_sent -= len(self._write_buffer)
        self._write_buffer.clear()

    def kill(self) -> None:
        """SIGKILL the worker and its process group (its exit is reported as usual)."""
        if not self.ended:
            self.child.kill()
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the worker's process group: the worker and what its methods started."""
        if not self.ended:
            kill_group(self.pid, signal.SIGTERM)

    def kill_later(self, delay_s: float) -> None:
        """Kill the worker if it is still there in ``delay_s`` seconds."""
        if self._exit_timer is None and not self.ended:
            self._exit_timer = self.loop.call_later(delay_s, self.kill)

    # ------------------------------------------------------------------ frames in
    def _on_readable(self) -> None:
        try:
            data = os.read(self.from_worker, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its output: it is ending (or must)
            self.loop.remove_reader(self.from_worker)
            self.kill_later(1.0)
            return
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        if self._refusing:  # a broken worker: what it still sends is dropped
            return
        if self._read_buffer:  # the rest of a frame begun in an earlier read
            buffer = self._read_buffer
            buffer += data
        else:
            buffer = data
        header = framing.EVENT_HEADER
        size = header.size
        on_event = self.on_event
        position, end_of_data = 0, len(buffer)
        while end_of_data - position >= size:
            length, kind, call_id = header.unpack_from(buffer, position)
            if self.max_frame_bytes and length > self.max_frame_bytes:
                self._read_buffer = b""
                self._refusing = True
                self.broken(f"a frame of {length} bytes, over its memory cap")
                return
            end = position + size + length
            if end > end_of_data:
                break
            payload = bytes(buffer[position + size : end])
            position = end
            if kind == framing.LOG:
                self._log_record(payload)
            elif kind in framing.EVENT_KINDS:
                on_event(kind, call_id, payload)
            else:
                self.broken(f"a frame of unknown kind {kind}")
        if position == len(buffer):
            self._read_buffer = b""
        elif position or buffer is data:  # keep the incomplete frame, growing in place
            self._read_buffer = bytearray(buffer[position:])

    def _log_record(self, payload: bytes) -> None:
        """Hand a LOG frame's record to this process's logger of its name (data only)."""
        if not replay_log_record(payload):
            self.broken("an unreadable log record")

    def broken(self, what: str) -> None:
        """The worker wrote ``what`` (a frame it must not send): log it, kill the worker."""
        logger.error("worker %d sent %s; killing it as broken", self.pid, what)
        self.kill()

    # ------------------------------------------------------------------ exit
    def _on_pidfd(self) -> None:
        self.loop.remove_reader(self.pidfd)
        self.child.end_group()
        if self.child.poll() is None and self.child.when_known(self._end):
            self.loop.call_later(EXIT_STATUS_WAIT_S, self._end)
        else:
            self._end()

    def _end(self) -> None:
        """The process is gone: read its last frames, close everything, tell the owner."""
        if self.ended:
            return
        self.ended = True
        while self.from_worker >= 0:  # answers written before the exit are still in the pipe
            try:
                data = os.read(self.from_worker, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                break
            self._consume(data)
        self.loop.remove_reader(self.from_worker)
        os.close(self.from_worker)
        self.from_worker = -1
        os.close(self.pidfd)
        self.bytes_taken = self.bytes_sent - self._bytes_unread()
        os.close(self._to_worker_read)
        self.close_input()
        if self._exit_timer is not None:
            self._exit_timer.cancel()
        self.returncode = self.child.poll()
        self.on_exit(exit_facts(self.pid, self.returncode))

    def _bytes_unread(self) -> int:
        """Bytes sent that the worker never read: still in its input pipe or not yet written."""
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(self._to_worker_read, termios.FIONREAD, waiting, True)
        except OSError:  # cannot tell: count the pipe as read (its calls count as started)
            waiting[0] = 0
        return waiting[0] + len(self._write_buffer)

    def end_now(self) -> None:
        """Kill the worker and report its end at once (shutdown: no waiting for the status)."""
        if not self.ended:
            self.kill()
            self.loop.remove_reader(self.pidfd)
            self.child.kill()
            self._end()
