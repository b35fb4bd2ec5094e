"""A public server's health, for a load balancer: ``GET /healthz`` and a graceful drain.

``/healthz`` answers 200 with JSON while the server can answer (it is started, its models are
installed, it is not stopping, its engine is up) and 503 while it starts or drains or its engine
restarts after a crash, so a balancer (nginx, HAProxy, a platform's checks) sends new people
elsewhere. It says nothing about this computer beyond that:
the state, how many requests are running or waiting, how many models are installed, the device.

On SIGTERM the server **drains**: ``/healthz`` turns 503 at once, new work (a page, a sign-in, a
task request, an API call) is refused with 503 and a sentence (a balancer retries it on another
replica), while the requests already running finish and their results still stream out (the
event streams of Gradio's queue pass); then the process exits, at the latest after
:data:`DRAIN_SECONDS` (``pipedesk serve --drain-seconds``).

Pure ASGI middleware, outermost (before the Host gate: a balancer's check names the replica's
address, not the public name); runs on the server's event loop. The state is set by the serving
thread (:mod:`desktop.cli.public`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from desktop.engine.client import ENGINE_DOWN

State = Literal["starting", "ready", "draining"]
PATH = "/healthz"
#: The most seconds a draining server waits for its running requests before it exits.
DRAIN_SECONDS = 30.0
STOPPING = "This server is stopping for maintenance; open the address again in a moment."
#: What may still pass while draining: the event streams (and their heartbeats) that carry running
#: requests' results, and the files those results name.
STILL_SERVED = ("/queue/data", "/heartbeat/", "/file=", "/gradio_api/file=", "/assets/")


@dataclass
class Health:
    """One server's state and how busy it is (``busy`` counts running and waiting requests)."""

    state: State = "starting"
    busy: Callable[[], int] = lambda: 0
    details: Callable[[], dict[str, Any]] = dict
    #: The engine's state (:attr:`desktop.engine.client.Status.engine`): while it restarts after a
    #: crash, or when it could not start, the replica answers 503 so the balancer skips it.
    engine: Callable[[], str] = lambda: "running"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ready(self) -> None:
        with self._lock:
            if self.state == "starting":
                self.state = "ready"

    def drain(self) -> None:
        with self._lock:
            self.state = "draining"

    def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of ``/healthz``."""
        engine = self.engine()
        body = {"status": self.state, "engine": engine, "requests": self.busy(), **self.details()}
        return (200 if self.state == "ready" and engine not in ENGINE_DOWN else 503), body

    def wait_drained(self, limit: float = DRAIN_SECONDS, poll: float = 0.2) -> bool:
        """Block until no request runs or waits (True), or ``limit`` seconds passed (False)."""
        deadline = time.monotonic() + limit
        while self.busy() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True


def queue_busy(blocks: Any) -> Callable[[], int]:
    """How many requests Gradio's queue of ``blocks`` is running or holding."""

    def busy() -> int:
        queue = getattr(blocks, "_queue", None)
        if queue is None:
            return 0
        return len(queue) + queue.get_active_worker_count()

    return busy


class HealthRoute:
    """ASGI middleware: answers ``/healthz`` (under any root path) and, while draining, refuses
    new work with 503."""

    def __init__(self, app: Any, health: Health) -> None:
        self.app, self.health = app, health

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == PATH or path.endswith(PATH):
            status, body = self.health.report()
            await _answer(send, status, json.dumps(body).encode(), b"application/json")
            return
        if self.health.state == "draining" and not any(part in path for part in STILL_SERVED):
            body = json.dumps({"error": {"message": STOPPING, "type": "unavailable"}}).encode()
            await _answer(send, 503, body, b"application/json", retry=True)
            return
        await self.app(scope, receive, send)


async def _answer(send: Any, status: int, body: bytes, kind: bytes, retry: bool = False) -> None:
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if retry:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
