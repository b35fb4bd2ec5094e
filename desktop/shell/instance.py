"""One Pipedesk at a time: an OS file lock plus a tiny control channel on 127.0.0.1.

The first launch takes an exclusive lock on ``<data dir>/instance.lock`` and keeps
it for its whole life; the operating system drops it when the process ends, even
after a crash, so a lock can never outlive its owner. Next to it,
``instance.json`` says where the owner listens (a port on 127.0.0.1) and a random
token. A second launch that cannot take the lock sends ``{"token", "command":
"show"}`` there and exits: the running app brings its window forward (or prints
its URL when it has no window). A lock file whose lock nobody holds is a leftover
from a crash: it is logged and taken over.

Threads: :func:`acquire` runs on the main thread; the control server answers on
its own daemon thread and calls the handler there.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from desktop import fs, paths

log = logging.getLogger(__name__)

LOCK_NAME = "instance.lock"
INFO_NAME = "instance.json"
#: How long a second launch waits for a starting first one to publish its control port.
CONNECT_WAIT_S = 5.0
#: How long a launch waits for a stopping one (window closed, server stopping) to exit.
STOPPING_WAIT_S = 30.0

Handler = Callable[[str], dict[str, Any]]
"""``handler(command) -> reply``: runs on the control thread; the reply is sent back as JSON."""


def lock_file() -> Path:
    return paths.data_dir() / LOCK_NAME


def info_file() -> Path:
    return paths.data_dir() / INFO_NAME


# --- the OS lock --------------------------------------------------------------------------


def _try_lock(handle: IO[bytes]) -> bool:
    """Take an exclusive, non-blocking lock on ``handle``; False if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _read_info() -> dict[str, Any] | None:
    try:
        data = json.loads(info_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _write_info(data: dict[str, Any]) -> None:
    fs.write_text(info_file(), json.dumps(data), private=True)  # holds the control token: owner-only


# --- the control channel ------------------------------------------------------------------


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, token: str, handler: Handler) -> None:
        self.token = token
        self.handler = handler
        super().__init__(("127.0.0.1", 0), _ControlRequest)


class _ControlRequest(socketserver.StreamRequestHandler):
    timeout = 5

    def handle(self) -> None:
        server: _ControlServer = self.server  # type: ignore[assignment]
        try:
            request = json.loads(self.rfile.readline(4096) or b"{}")
        except ValueError:
            return
        if not isinstance(request, dict) or not secrets.compare_digest(
            str(request.get("token", "")), server.token
        ):
            log.warning("Control channel: request with a wrong token ignored")
            return
        try:
            reply = server.handler(str(request.get("command", "")))
        except Exception as exc:  # the channel must keep answering
            log.exception("Control command failed")
            reply = {"ok": False, "error": str(exc)}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


def send(command: str, info: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``command`` to the running instance; its reply, or None when nobody answers."""
    info = info or _read_info()
    if not info or not info.get("port"):
        return None
    payload = json.dumps({"token": info.get("token", ""), "command": command}).encode() + b"\n"
    try:
        with socket.create_connection(("127.0.0.1", int(info["port"])), timeout=timeout) as sock:
            sock.sendall(payload)
            with sock.makefile("rb") as reader:
                line = reader.readline(65536)
        return json.loads(line) if line else None
    except (OSError, ValueError):
        return None


# --- the instance -------------------------------------------------------------------------


@dataclass
class Instance:
    """This process's claim to be the one running Pipedesk; :meth:`release` gives it up."""

    handle: IO[bytes]
    server: _ControlServer
    info: dict[str, Any] = field(default_factory=dict)
    stale: dict[str, Any] | None = None  # what a crashed predecessor left, if anything

    def publish(self, **values: Any) -> None:
        """Add ``values`` (the app's URL, say) to what a second launch is told."""
        self.info.update(values)
        _write_info(self.info)

    def release(self) -> None:
        """Stop answering, remove the info file and drop the lock (again: no-op)."""
        if self.handle.closed:
            return
        self.server.shutdown()
        self.server.server_close()
        try:
            if _read_info() == self.info:
                info_file().unlink()
        except OSError:
            pass
        self.handle.close()  # closing the file releases the lock


@dataclass(frozen=True)
class Running:
    """Another Pipedesk holds the lock; ``reply`` is what it answered (None: it did not)."""

    pid: int | None
    reply: dict[str, Any] | None


def acquire(handler: Handler) -> Instance | Running:
    """Become the one instance (answering commands with ``handler``), or find the one running.

    One that answers ``{"stopping": true}`` (its window was closed or lost, it is
    stopping its server) is waited for, up to :data:`STOPPING_WAIT_S`, and then
    replaced: a launch right after a close opens a window instead of reporting one.
    """
    paths.ensure(paths.data_dir())
    contact_until = time.monotonic() + CONNECT_WAIT_S
    stopping_until = time.monotonic() + STOPPING_WAIT_S
    waiting = False
    while True:
        handle = open(lock_file(), "a+b")  # noqa: SIM115 - held open for the life of the process
        if _try_lock(handle):
            return _claim(handle, handler)
        handle.close()
        info = _read_info()
        reply = send("show", info) if info else None
        pid = (info or {}).get("pid")
        if reply is not None and reply.get("stopping") and time.monotonic() < stopping_until:
            if not waiting:
                log.info("The running Pipedesk (process %s) is stopping: waiting for it to exit", pid)
                waiting = True
            contact_until = time.monotonic() + CONNECT_WAIT_S  # its channel closes just before its lock
        elif reply is not None or time.monotonic() > contact_until:  # it answered, or never did
            return Running(pid=pid, reply=reply)
        time.sleep(0.1)


def _claim(handle: IO[bytes], handler: Handler) -> Instance:
    """The lock is ours: clear what a crashed predecessor left and start answering."""
    stale = _read_info()
    if stale:
        log.warning(
            "Cleared a stale instance lock left by process %s (it is no longer running)", stale.get("pid")
        )
    server = _ControlServer(secrets.token_urlsafe(16), handler)
    threading.Thread(target=server.serve_forever, args=(0.1,), name="instance-control", daemon=True).start()
    instance = Instance(handle=handle, server=server, stale=stale)
    instance.publish(pid=os.getpid(), port=server.server_address[1], token=server.token, started=time.time())
    log.info("Single-instance lock taken (control port %s)", server.server_address[1])
    return instance
