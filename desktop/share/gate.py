"""What LAN visitors get at the door: a log, sign-in limits and upload quotas.

``VisitorGate`` is ASGI middleware on the sharing server (it runs on that
server's event loop): it logs each visitor's first connection, counts sign-in
attempts per address (each is counted, under a lock, *before* the password is
checked, and given back when it was right; one attempt in flight per address)
and, after too many wrong ones, refuses further attempts from that address for a
while. It also counts what each visitor uploads and refuses more than
``UPLOAD_QUOTA`` bytes per address in one sharing session (files are removed when
sharing stops). ``VisitorRuntime`` wraps the app's Runtime for
the visitors' Blocks: the same loaded models and the same device queue, but a
visitor can only use models the owner already installed: nothing is downloaded
on a visitor's behalf and no folder path typed by a visitor is ever opened.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from desktop.server import gate as server_gate

log = logging.getLogger(__name__)

#: Wrong passwords from one address, within ``LOCKOUT_S``, before it is locked out.
MAX_FAILURES = 10
LOCKOUT_S = 600.0
#: Bytes of files one address may upload while sharing is on (one request is capped by the gate).
UPLOAD_QUOTA = 200 * 1024 * 1024


@dataclass
class Visitor:
    """One address that reached the sharing server."""

    address: str
    first_seen: float
    last_seen: float
    requests: int = 0
    signed_in: bool = False
    failures: int = 0
    last_failure: float = 0.0
    agent: str = ""
    signing_in: bool = False  # a sign-in from this address is being checked right now
    uploaded: int = 0  # bytes of multipart bodies (files) received from this address


class VisitorGate:
    """Visitor log and sign-in throttle for one sharing session (``reset`` starts a new one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._visitors: dict[str, Visitor] = {}
        #: False while the server starts: Gradio checks its own URL then, and that is no visitor.
        self.open = False
        self.upload_quota = UPLOAD_QUOTA

    def reset(self) -> None:
        with self._lock:
            self._visitors.clear()

    def visitors(self) -> list[Visitor]:
        """Everyone seen this session, most recent first (copies)."""
        with self._lock:
            items = [Visitor(**vars(v)) for v in self._visitors.values()]
        return sorted(items, key=lambda v: v.last_seen, reverse=True)

    # --- bookkeeping (event-loop thread) -------------------------------------------------

    def _seen(self, address: str, agent: str) -> Visitor:
        now = time.time()
        with self._lock:
            visitor = self._visitors.get(address)
            if visitor is None:
                visitor = self._visitors[address] = Visitor(address, now, now, agent=agent)
                log.info("LAN visitor connected from %s (%s)", address, agent or "unknown browser")
            visitor.last_seen = now
            visitor.requests += 1
            return visitor

    def _locked_out(self, visitor: Visitor) -> float:
        """Seconds left before ``visitor`` may try a password again (0: now)."""
        if visitor.failures < MAX_FAILURES:
            return 0.0
        return max(0.0, visitor.last_failure + LOCKOUT_S - time.time())

    def _begin_sign_in(self, visitor: Visitor) -> str | None:
        """Count an attempt before its password is checked: None to go on, else why it is refused."""
        with self._lock:
            now = time.time()
            if visitor.last_failure and now - visitor.last_failure > LOCKOUT_S:
                visitor.failures = 0
            wait = self._locked_out(visitor)
            if wait:
                return f"Too many wrong passwords: try again in {max(1.0, wait / 60):.0f} minutes."
            if visitor.signing_in:
                return "One sign-in at a time: wait for the answer to the last one."
            visitor.signing_in = True
            visitor.failures += 1  # counted as wrong until the password is known to be right
            visitor.last_failure = now
            return None

    def _signed(self, visitor: Visitor, status: int | None) -> None:
        with self._lock:
            visitor.signing_in = False
            if status == 200:
                visitor.signed_in, visitor.failures, visitor.last_failure = True, 0, 0.0
                log.info("LAN visitor %s signed in", visitor.address)
                return
            count = visitor.failures
        log.warning("Wrong LAN password from %s (%d in a row)", visitor.address, count)
        if count == MAX_FAILURES:
            log.warning("LAN sign-in locked for %s for %.0f minutes", visitor.address, LOCKOUT_S / 60)

    def _quota_text(self) -> str:
        return (
            f"You have sent {self.upload_quota / (1024 * 1024):.0f} MB of files already: that is the most "
            "one device can send while this computer shares Pipedesk."
        )

    def _account(self, visitor: Visitor, size: int) -> str | None:
        """Add ``size`` uploaded bytes to ``visitor``: None while within the quota, else the refusal."""
        with self._lock:
            visitor.uploaded += size
            over = visitor.uploaded > self.upload_quota
        return self._quota_text() if over else None

    # --- the middleware ------------------------------------------------------------------

    def asgi(self, app: Any) -> Any:
        """Wrap the sharing server's ASGI ``app`` (``starlette.middleware.Middleware(gate.asgi)``)."""

        async def gate(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket") or not self.open:
                await app(scope, receive, send)
                return
            address = (scope.get("client") or ("unknown", 0))[0]
            headers = dict(scope.get("headers") or [])
            visitor = self._seen(address, headers.get(b"user-agent", b"").decode("latin-1")[:120])
            post = scope["type"] == "http" and scope.get("method") == "POST"
            if post and headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                await self._upload(app, scope, receive, send, visitor, headers)
                return
            if not (post and scope.get("path", "").rstrip("/").endswith("/login")):
                await app(scope, receive, send)
                return
            refusal = self._begin_sign_in(visitor)
            if refusal:
                await server_gate.refuse(scope, send, 429, refusal)
                return
            status: dict[str, int] = {}

            async def watch(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, watch)
            finally:
                self._signed(visitor, status.get("code"))

        return gate

    async def _upload(
        self, app: Any, scope: dict[str, Any], receive: Any, send: Any, visitor: Visitor, headers: dict
    ) -> None:
        """Pass a multipart request (files) on, counting its bytes against the visitor's quota."""
        declared = headers.get(b"content-length", b"").strip()
        with self._lock:
            left = self.upload_quota - visitor.uploaded
        if left <= 0 or (declared.isdigit() and int(declared) > left):
            await server_gate.refuse(scope, send, 413, self._quota_text())
            return
        body = server_gate.CountedBody(
            receive, 1 << 62, "", account=lambda size: self._account(visitor, size)
        )
        await server_gate.serve_counted(app, scope, send, body)
