"""The door of the API paths (``/v1/...`` and ``/mcp``): who may use them, and where they are served.

The Local API (:mod:`desktop.api`) is served by the same server as the app, behind the same gate
(:mod:`desktop.server.gate`): Host and Origin are checked as for the page, bodies are capped as
for the rest of the server. What differs is the key: other programs send
``Authorization: Bearer KEY`` instead of the window's token or a sign-in cookie. An
:class:`ApiAccess` says whether the API answers at all (the Local API switch), which keys open it
(none: no key needed, as for ``pipedesk serve`` on loopback without ``--token``) and, on servers
for other people, who counts wrong keys (the visitors' sign-in lockout: a key is a password). The
gate asks :func:`refusal` before a byte of the body is read. Refusals on these paths are
OpenAI-shaped JSON (:func:`error_body`), which the ``openai`` client reads as its error's message.

:class:`ApiRoutes` (the innermost middleware) hands the API paths to the API's own ASGI app and
everything else to Gradio. Pure ASGI plumbing on the server's event loop; keeps no state.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

API_OFF = (
    "The Local API is off: turn it on in Pipedesk's Sharing tab (Local API) to let other programs use it."
)
NO_KEY = "This Pipedesk server needs an API key: send it as 'Authorization: Bearer KEY'."
WRONG_KEY = "Wrong API key: use the key shown in Pipedesk (the Local API, or the sharing password)."
#: OpenAI's error ``type`` and ``code`` for the statuses the door and the API answer with.
KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_answer"),
    429: ("rate_limit_error", "too_many_requests"),
    500: ("server_error", "server_error"),
    503: ("server_error", "busy"),
}


def is_api_path(path: str) -> bool:
    """True for the Local API's paths: ``/v1/...`` (OpenAI's shape) and ``/mcp`` (MCP tools)."""
    return path in ("/v1", "/mcp") or path.startswith(("/v1/", "/mcp/"))


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """An OpenAI-shaped error: ``{"error": {"message", "type", "code"}}``."""
    kind, default = KINDS.get(status, KINDS[500] if status >= 500 else KINDS[400])
    error = {"message": message, "type": kind, "param": None, "code": code or default}
    return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")


class KeyAttempts(Protocol):
    """Counts keys tried per address, as sign-ins are (the visitors' gate implements it)."""

    def begin_key(self, address: str) -> str | None:
        """Count an attempt before the key is checked: None to go on, else why it is refused."""

    def end_key(self, address: str, right: bool) -> None:
        """The key was right (the count starts again) or wrong (it stays counted)."""


def _always() -> bool:
    return True


@dataclass(frozen=True)
class ApiAccess:
    """Who may use one server's API paths (see the module docstring)."""

    accepted: Callable[[], tuple[str, ...]] = tuple  # the bearer keys that open it, read at each request
    enabled: Callable[[], bool] = _always  # False: every API request is refused with ``off``
    off: str = API_OFF
    attempts: KeyAttempts | None = field(default=None, compare=False)


def bearer(headers: dict[str, str]) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header (None when there is none)."""
    scheme, _, key = headers.get("authorization", "").strip().partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


def refusal(
    access: ApiAccess, scope: dict[str, Any], headers: dict[str, str], needs_key: bool
) -> tuple[int, str] | None:
    """(status, words) when this API request may not go on, else None. ``needs_key``: the server
    asks everybody for something (a token, a sign-in), so an API without keys is closed, not open."""
    if not access.enabled():
        return 403, access.off
    keys = [key for key in access.accepted() if key]
    if not keys:
        return (401, NO_KEY) if needs_key else None
    given = bearer(headers)
    if given is None:
        return 401, NO_KEY
    address = (scope.get("client") or ("unknown", 0))[0]
    if access.attempts is not None:
        refused = access.attempts.begin_key(address)
        if refused:
            return 429, refused
    right = any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)
    if access.attempts is not None:
        access.attempts.end_key(address, right)
    return None if right else (401, WRONG_KEY)


class ApiRoutes:
    """ASGI middleware: the API paths go to ``api``, everything else to the app it wraps."""

    def __init__(self, app: Any, api: Any) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_api_path(scope.get("path", "")):
            await self.api(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class ApiMount(Protocol):
    """What a Blocks carries to be served with its API (``blocks.pipedesk_api``, set by the UI)."""

    #: Who may use it when the server is not told otherwise (the window: the Local API switch).
    access: ApiAccess

    def preferred_port(self, host: str) -> int | None:
        """A port to ask for first when the caller names none (the Local API's saved address)."""

    def serve(self) -> tuple[Any, Callable[[Any], Any]]:
        """A fresh ASGI app for the API paths and the lifespan it needs, for one server's life."""
