"""What LAN visitors get at the door: a log, sign-in limits, upload quotas and their own files.

``VisitorGate`` is ASGI middleware on every server for other people (LAN sharing, public
deployments); it runs on that server's event loop, inside the server's own gate
(:mod:`desktop.server.gate`, which has already bounded every body). It

* logs each visitor's first connection;
* counts sign-in attempts per address, however the form is sent: each is counted, under a lock,
  *before* the password is checked (and given back when it was right, before the answer is sent),
  once its body has fully arrived (a body left half-sent holds nothing up), one at a time per
  address; after too many wrong ones, that address is refused for a while; an API request's key
  (the password, as a bearer key: :mod:`desktop.server.api_door`) is counted the same way;
* counts what each visitor uploads and refuses more than ``UPLOAD_QUOTA`` bytes per address in
  one sharing session (files are removed when sharing stops);
* remembers which files each visitor uploaded (by sign-in, or by address where nobody signs
  in) and refuses a request that names any other file: Gradio accepts every file of its cache
  as an input, the owner's uploads included.

The visitors' Blocks run on ``door.visitors()``: the same loaded models and the same device
queue, but only models the owner already installed, and the visitors' smaller file limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from desktop.server import api_door, bodies
from desktop.server import gate as server_gate

log = logging.getLogger(__name__)

#: Wrong passwords from one address, within ``LOCKOUT_S``, before it is locked out.
MAX_FAILURES = 10
LOCKOUT_S = 600.0
#: Bytes of files one address may upload while sharing is on (one request is capped by the gate).
UPLOAD_QUOTA = 200 * 1024 * 1024
#: Seconds a sign-in's body may take to arrive before it is answered "too slow".
SIGN_IN_BODY_S = 15.0
#: The most of an upload's answer (the paths it stored) kept to learn whose files they are.
MAX_UPLOAD_ANSWER = 256 * 1024
NOT_YOURS = "Only files you uploaded yourself can be used here: upload the file again."


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
        self._files: dict[str, set[str]] = {}  # who -> the files they uploaded (normalised paths)
        #: False while the server starts: Gradio checks its own URL then, and that is no visitor.
        self.open = False
        self.upload_quota = UPLOAD_QUOTA

    def reset(self) -> None:
        with self._lock:
            self._visitors.clear()
            self._files.clear()

    def visitors(self) -> list[Visitor]:
        """Everyone seen this session, most recent first (copies)."""
        with self._lock:
            items = [Visitor(**vars(v)) for v in self._visitors.values()]
        return sorted(items, key=lambda v: v.last_seen, reverse=True)

    # --- bookkeeping (event-loop thread) -------------------------------------------------

    def _seen(self, address: str, agent: str) -> Visitor:
        visitor = self._visitor(address, agent)
        with self._lock:
            visitor.last_seen = time.time()
            visitor.requests += 1
            return visitor

    def _visitor(self, address: str, agent: str = "") -> Visitor:
        now = time.time()
        with self._lock:
            visitor = self._visitors.get(address)
            if visitor is None:
                visitor = self._visitors[address] = Visitor(address, now, now, agent=agent)
                log.info("LAN visitor connected from %s (%s)", address, agent or "unknown browser")
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

    # --- API keys (desktop.server.api_door.KeyAttempts): the key is the password -----------

    def begin_key(self, address: str) -> str | None:
        """An API request's key is about to be checked: counted first, as a sign-in is."""
        return self._begin_sign_in(self._visitor(address))

    def end_key(self, address: str, right: bool) -> None:
        """The key was right (the count starts again; logged once) or wrong (it stays counted)."""
        visitor = self._visitor(address)
        with self._lock:
            known = right and visitor.signed_in
            if known:
                visitor.signing_in, visitor.failures, visitor.last_failure = False, 0, 0.0
        if not known:
            self._signed(visitor, 200 if right else 401)

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

    # --- whose files ----------------------------------------------------------------------

    def _uploaded(self, owner: str, paths: list[str]) -> None:
        with self._lock:
            self._files.setdefault(owner, set()).update(os.path.normpath(p) for p in paths)

    def _not_theirs(self, owner: str, paths: list[str]) -> list[str]:
        with self._lock:
            mine = self._files.get(owner, set())
            return [p for p in paths if os.path.normpath(p) not in mine]

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
            if not post:
                await app(scope, receive, send)
            elif scope.get("path", "").rstrip("/").endswith("/login"):
                await self._sign_in(app, scope, receive, send, visitor)
            elif headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                await self._upload(app, scope, receive, send, visitor, headers)
            else:
                await self._request(app, scope, receive, send, visitor, headers)

        return gate

    async def _sign_in(
        self, app: Any, scope: dict[str, Any], receive: Any, send: Any, visitor: Visitor
    ) -> None:
        """A sign-in, however its form is sent (Gradio's page posts multipart): counted before the
        password is checked, one at a time per address, and only once its body has arrived (a
        body left half-sent holds no place)."""
        try:
            body = await asyncio.wait_for(bodies.read_body(receive), SIGN_IN_BODY_S)
        except asyncio.TimeoutError:
            await bodies.refuse(scope, send, 408, "The sign-in took too long to arrive: try again.")
            return
        except bodies.BodyRefused as refused:
            await bodies.refuse(scope, send, 413, str(refused))
            return
        refusal = self._begin_sign_in(visitor)
        if refusal:
            await bodies.refuse(scope, send, 429, refusal)
            return
        status: dict[str, int] = {}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and "code" not in status:
                status["code"] = message["status"]
                # Recorded before the answer leaves: whoever reads it finds the sign-in counted.
                self._signed(visitor, status["code"])
            await send(message)

        try:
            await app(scope, bodies.replay(body, receive), watch)
        finally:
            if "code" not in status:  # no answer at all: a failed attempt, and the next may go
                self._signed(visitor, None)

    async def _request(
        self, app: Any, scope: dict[str, Any], receive: Any, send: Any, visitor: Visitor, headers: dict
    ) -> None:
        """A request with data (a task's inputs): every file it names must be one this visitor
        uploaded (Gradio would take any file of its cache, the owner's uploads included)."""
        body = await bodies.read_body(receive)  # bounded by the server's gate (a few MB)
        named = file_paths(body)
        if named and self._not_theirs(_whose(scope, headers, visitor), named):
            await bodies.refuse(scope, send, 403, NOT_YOURS)
            return
        await app(scope, bodies.replay(body, receive), send)

    async def _upload(
        self, app: Any, scope: dict[str, Any], receive: Any, send: Any, visitor: Visitor, headers: dict
    ) -> None:
        """Pass a multipart request (files) on, counting its bytes against the visitor's quota and
        remembering the files it stored as this visitor's."""
        declared = headers.get(b"content-length", b"").strip()
        with self._lock:
            left = self.upload_quota - visitor.uploaded
        if left <= 0 or (declared.isdigit() and int(declared) > left):
            await bodies.refuse(scope, send, 413, self._quota_text())
            return
        body = bodies.CountedBody(receive, 1 << 62, "", account=lambda size: self._account(visitor, size))
        answer: dict[str, Any] = {"status": 0, "body": b""}

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body" and len(answer["body"]) < MAX_UPLOAD_ANSWER:
                answer["body"] += message.get("body", b"")
            await send(message)

        await bodies.serve_counted(app, scope, keep, body)
        if answer["status"] == 200 and not api_door.is_api_path(scope.get("path", "")):
            try:
                stored = json.loads(answer["body"])
            except ValueError:
                return
            if isinstance(stored, list):
                self._uploaded(_whose(scope, headers, visitor), [p for p in stored if isinstance(p, str)])


def _whose(scope: dict[str, Any], headers: dict, visitor: Visitor) -> str:
    """Who a request comes from, for whose files are whose: the person signed in through an identity
    provider (:mod:`desktop.share.oidc`), the visitor's sign-in (each browser signed in has its own),
    or its address where nobody signs in (a public deployment)."""
    if scope.get("pipedesk.person"):
        return f"person:{scope['pipedesk.person']}"
    cookies = server_gate.cookies_of(headers.get(b"cookie", b"").decode("latin-1"))
    token = server_gate.session_token(scope, cookies)
    return f"session:{token}" if token else f"address:{visitor.address}"


def file_paths(body: bytes) -> list[str]:
    """The files a JSON request names: the ``path`` of every object that has one (Gradio's
    FileData), however deep; [] when the body is not JSON."""
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):  # not JSON the app could read either
        return []
    found: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str):
                found.append(path)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
