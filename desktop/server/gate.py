"""The gate in front of every server Pipedesk runs: Host, Origin and the window's secret.

Pure ASGI middleware, added by :func:`desktop.server.start` to every Gradio server
(the window's own, ``pipedesk serve``, the LAN server) through
``launch(app_kwargs={"middleware": [...]})``. Before a request reaches Gradio:

- **Host.** A web page whose name resolves to 127.0.0.1 (DNS rebinding) sends its
  own name as ``Host``: only this computer's names are answered (loopback names
  on a loopback server; IP addresses and this computer's name on the LAN server),
  always at the server's own port. A public server given its public names
  (``pipedesk serve --public-name``) answers those names (at any port, unless the
  name gives one) and its own loopback address, nothing else.
- **Origin.** A request a browser sends from another site carries that site's
  ``Origin``: refused (and ``null``, a sandboxed or file page), so no other page
  can drive Pipedesk's controls. Scripts send no Origin and are not affected.
- **The window's secret** (``token``). The window opens ``/?pipedesk_token=…``
  once; the answer keeps the token in an HttpOnly, SameSite=Strict cookie named
  for the port and sends the window on to the same address without it. From then
  on every request (page, API, event streams, websockets) needs that cookie, or
  the token in an ``X-Pipedesk-Token`` header (scripts, ``pipedesk serve --token``);
  only Gradio's own start-up call (``NO_TOKEN_PATHS``) goes without.
- **Bodies.** Before a byte of a body is read: over ``signed_out_body`` (a few KB,
  enough to sign in) it is refused with 413 unless the request carries a session
  (the window's token, or Gradio's own sign-in cookie on a server with a password,
  checked as Gradio checks it). Only files (multipart bodies) may be as large as the
  upload limit (``max_body``); any other body (the JSON of a task request, which needs
  well under 1 MB) is refused past :data:`MAX_DATA_BODY`, and a JSON body with more
  than :data:`MAX_CONTAINERS` objects and lists (46 MB of empty objects cost 3 GB to
  parse) is refused before the app parses it. Bytes are counted as they stream in, so
  a body sent in chunks with no Content-Length is cut off at the same limit; so is a
  multipart body with more than ``max_files`` files.
- **The API paths** (``/v1/...``, ``/mcp``: the Local API) take ``Authorization: Bearer KEY`` in
  place of the window's token or a sign-in (:mod:`desktop.server.api_door` says who may use them);
  Host, Origin and the body limits apply as everywhere.
- **Other addresses.** ``/file=http://…`` makes Gradio fetch that URL and pass it
  on (Gradio allows public addresses only): refused, so nobody can make this
  computer fetch anything for them.

Threads: the middleware runs on the server's event loop; it keeps no state of its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from desktop.server import api_door
from desktop.server.bodies import (
    MAX_CONTAINERS,
    BodyRefused,
    CountedBody,
    FileParts,
    boundary_of,
    read_body,
    refuse,
    replay,
    serve_counted,
    too_many_containers,
)

Hosts = Literal["loopback", "lan", "any", "named"]

TOKEN_PARAM = "pipedesk_token"
TOKEN_HEADER = "X-Pipedesk-Token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Gradio calls this itself, without our token, while ``launch()`` starts; it only runs the app's
#: start-up events, once, and answers true or false: nothing to read, nothing to change.
NO_TOKEN_PATHS = frozenset({"/gradio_api/startup-events"})

#: Before sign-in a body only has to carry a name and a password.
SIGNED_OUT_BODY = 16 * 1024
#: Files in one request (multipart parts with a file name), and other form fields beside them.
MAX_FILES = 10
MULTIPART_FIELDS = 10
#: Any body that is not files: a task request with the longest text a task takes (100,000
#: characters, 600 KB at worst as JSON escapes) and a chat's history fit several times over.
MAX_DATA_BODY = 4 * 1024 * 1024

OTHER_HOST = "This address is not Pipedesk's: open Pipedesk through this computer's own address."
NOT_PUBLIC_NAME = "This Pipedesk server answers only at {names}: open it through that address."
OTHER_SITE = "Pipedesk does not answer requests that other web pages make."
NO_TOKEN = "This Pipedesk server answers only its own window (or scripts that give its token)."
NO_FETCH = "Pipedesk serves its own files only: it does not fetch other addresses."
TOO_COMPLEX = f"Too complex: Pipedesk takes at most {MAX_CONTAINERS:,} objects and lists in one request."

#: ``/file=<url>`` and ``/proxy=<url>`` (Gradio's routes that fetch a URL): a scheme of 2+ letters
#: (``C:`` is a Windows drive, not a URL) or a scheme-relative ``//host``.
_FETCH = re.compile(r"/(?:file|proxy)=(?:[a-z][a-z0-9+.-]+:|[/\\]{2})", re.IGNORECASE)


def cookie_name(port: int) -> str:
    """The cookie that keeps the window's token for the server on ``port``."""
    return f"pipedesk-{port}"


@dataclass(frozen=True)
class GateOptions:
    """What the gate of one server checks (see the module docstring)."""

    port: int
    hosts: Hosts = "loopback"  # which Host names are answered
    token: str | None = None  # the per-launch secret, or None: no token asked
    names: frozenset[str] = field(default_factory=frozenset)  # more names ("lan"), the only ones ("named")
    max_body: int | None = None  # bytes in one request body, for everybody (None: no cap)
    signed_out_body: int = SIGNED_OUT_BODY  # before sign-in, on a server with a password
    max_files: int = MAX_FILES  # files in one multipart request
    api: api_door.ApiAccess | None = None  # who may use the API paths (None: the server has none)


def this_computer_names() -> frozenset[str]:
    """This computer's own names (``mypc``, ``mypc.local``), lower case, for the LAN server."""
    name = socket.gethostname().lower().rstrip(".")
    return frozenset({name, f"{name}.local", name.split(".")[0], f"{name.split('.')[0]}.local"})


def split_host(value: str) -> tuple[str, int | None]:
    """``("name", port)`` from a Host header (``[::1]:7860`` keeps its brackets); port None if absent."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name, port_text = name + "]", rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:  # no port, or a bare IPv6 address (not a valid Host)
        name, port_text = value, ""
    return name, int(port_text) if port_text.isdigit() else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def host_allowed(options: GateOptions, host: str) -> bool:
    """True when a request with this ``Host`` header is for this server."""
    if options.hosts == "any":
        return True
    name, port = split_host(host)
    if options.hosts == "named" and (name in options.names or f"{name}:{port}" in options.names):
        return True
    if port != options.port:
        return False
    if name in LOOPBACK_NAMES:
        return True
    return options.hosts == "lan" and (_is_ip(name) or name in options.names)


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def same_origin(origin: str, host: str) -> bool:
    """True when the page that sent ``Origin`` was served by the ``Host`` it is asking."""
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    origin_port = parts.port or _default_port(parts.scheme)
    host_name, host_port = split_host(host)
    return name == host_name and origin_port == (host_port or _default_port(parts.scheme))


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def cookies_of(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (none when it is malformed)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no cookie
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def browser_scheme(scope: dict[str, Any]) -> str:
    """``https`` or ``http``: how the browser reached this server, through a TLS-ending proxy too (its
    ``X-Forwarded-Proto``, first value). Decides the ``Secure`` flag of the cookies this server sets:
    a client that claims https only keeps its own cookie off plain http."""
    for key, value in scope.get("headers") or []:
        if key == b"x-forwarded-proto":
            return "https" if value.decode("latin-1").split(",")[0].strip().lower() == "https" else "http"
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    return cookies_of(headers.get("cookie", ""))


def _matches(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def gradio_session(scope: dict[str, Any], cookies: dict[str, str]) -> bool | None:
    """Whether the request is signed in to the Gradio app serving it, as Gradio checks it
    (``routes.App.get_current_user``: its access-token cookie names a token it issued);
    None when that app asks nobody to sign in."""
    app = scope.get("app")
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return None
    return session_token(scope, cookies) is not None


def session_token(scope: dict[str, Any], cookies: dict[str, str]) -> str | None:
    """The sign-in token (Gradio's access-token cookie) of the request, when the app serving it
    issued that token; None otherwise."""
    app = scope.get("app")
    cookie_id = getattr(app, "cookie_id", "")
    tokens = getattr(app, "tokens", {}) or {}
    given = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return given if given and given in tokens else None


def _kb(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / (1024 * 1024):.0f} MB"


class Gate:
    """ASGI middleware for one server: ``Middleware(Gate, options=GateOptions(...))``."""

    def __init__(self, app: Any, options: GateOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        if not host_allowed(self.options, host):
            await refuse(scope, send, 403, self._other_host())
            return
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            await refuse(scope, send, 403, OTHER_SITE)
            return
        if _FETCH.search(scope.get("path", "")):
            await refuse(scope, send, 403, NO_FETCH)
            return
        token = self.options.token
        if self.options.api is not None and api_door.is_api_path(scope.get("path", "")):
            await self._api(scope, receive, send, headers)
            return
        if token is not None and scope.get("path") not in NO_TOKEN_PATHS:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            given = dict(query).get(TOKEN_PARAM)
            if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and _matches(given, token):
                await self._keep_token(scope, send, query)
                return
            cookie = _cookies(headers).get(cookie_name(self.options.port))
            if not (_matches(cookie, token) or _matches(headers.get(TOKEN_HEADER.lower()), token)):
                await refuse(scope, send, 401, NO_TOKEN)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, headers, signed_in=token is not None)

    def _other_host(self) -> str:
        if self.options.hosts != "named":
            return OTHER_HOST
        return NOT_PUBLIC_NAME.format(names=", ".join(sorted(self.options.names)))

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[str, str]) -> None:
        """An API request: its bearer key in place of the token or a sign-in, then the body limits."""
        assert self.options.api is not None
        needs_key = self.options.token is not None or gradio_session(scope, _cookies(headers)) is not None
        refused = api_door.refusal(self.options.api, scope, headers, needs_key)
        if refused is not None:
            await refuse(scope, send, *refused)
        elif scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            await self._limited(scope, receive, send, headers, signed_in=True)

    async def _limited(
        self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[str, str], signed_in: bool
    ) -> None:
        """Pass the request on with its body counted against the limit that applies to it: files
        up to the upload limit, anything else (JSON) read whole up to a few MB and checked."""
        options = self.options
        boundary = boundary_of(headers.get("content-type", ""))
        if not signed_in and gradio_session(scope, _cookies(headers)) is False:
            limit = options.signed_out_body
            too_large = f"Sign in first: before that, requests over {_kb(limit)} are refused."
        elif boundary is not None:
            limit = options.max_body if options.max_body is not None else 1 << 62
            too_large = f"Too large: Pipedesk takes at most {_kb(limit)} in one request."
        else:
            limit = min(MAX_DATA_BODY, options.max_body or MAX_DATA_BODY)
            too_large = f"Too large: Pipedesk takes at most {_kb(limit)} in a request without files."
        length = headers.get("content-length", "").strip()
        if length and (not length.isdigit() or int(length) > limit):
            await refuse(scope, send, 413, too_large)
            return
        parts = FileParts(boundary, options.max_files, MULTIPART_FIELDS) if boundary else None
        body = CountedBody(receive, limit, too_large, parts)
        if boundary is not None or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await serve_counted(self.app, scope, send, body)
            return
        try:
            data = await read_body(body)
        except BodyRefused as refused:
            await refuse(scope, send, 413, str(refused))
            return
        if too_many_containers(data):
            await refuse(scope, send, 413, TOO_COMPLEX)
            return
        await self.app(scope, replay(data, receive), send)

    async def _keep_token(self, scope: dict[str, Any], send: Any, query: list[tuple[str, str]]) -> None:
        """The window's first request: set the cookie and send it on to the address without the token."""
        rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
        path = scope.get("raw_path") or scope.get("path", "/").encode("latin-1")
        location = path.decode("latin-1") + (f"?{rest}" if rest else "")
        cookie = f"{cookie_name(self.options.port)}={self.options.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
