"""What LAN visitors get: a logged, rate-limited door and a runtime limited to installed models.

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

from desktop import gate as server_gate
from desktop.errors import ModelError

log = logging.getLogger(__name__)

#: Wrong passwords from one address, within ``LOCKOUT_S``, before it is locked out.
MAX_FAILURES = 10
LOCKOUT_S = 600.0
#: Bytes of files one address may upload while sharing is on (one request is capped by the gate).
UPLOAD_QUOTA = 200 * 1024 * 1024
NOT_SHARED = (
    "Only the models already installed on the computer sharing Pipedesk can be used over the network; "
    "ask its owner to download this one."
)


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


class VisitorRuntime:
    """The Runtime as LAN visitors use it: installed models only (see the module docstring)."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    def _allowed(self, spec: Any, name: str | None) -> None:
        from desktop import catalog
        from desktop.models import ModelRef, looks_like_hub_id
        from desktop.tasks import known_models

        typed = (name or "").strip()
        known = {value for ref in (*spec.models, *known_models().values()) for value in (ref.repo, ref.label)}
        imported = bool(typed) and catalog.imported_path(typed) is not None
        if not typed or typed in known or imported:
            target = self._runtime.resolve(spec, typed)  # matched by name: no folder is looked at
        elif looks_like_hub_id(typed) and "/" in typed:
            target = ModelRef(typed, "main")  # never a folder: a name must not probe the disk
        else:  # a path, most likely: refused before anything looks at the disk
            raise ModelError(NOT_SHARED)
        if imported or not hasattr(target, "repo"):
            if not imported:
                raise ModelError(NOT_SHARED)
            return
        if self._runtime.store.local_path(target) is None:
            raise ModelError(f"{target.display} is not installed here. {NOT_SHARED}")

    def load(self, spec: Any, name: str | None, kind: str | None = None, progress: Any = None) -> Any:
        """Like ``Runtime.load``, for models already installed on this computer only."""
        self._allowed(spec, name)
        return self._runtime.load(spec, name, kind, progress)
