"""Sign-in through an organisation's identity provider (OpenID Connect) in front of a public server.

``pipedesk serve --public --oidc-issuer URL --oidc-client-id ID --oidc-client-secret-file FILE
[--oidc-allowed-domain example.org]``: :class:`OidcSignIn` is ASGI middleware on the visitors'
server, inside the server's gate (Host, Origin, body limits) and before the visitor gate. A person
who is not signed in is sent to the provider (the authorization code flow with PKCE, S256), comes
back to ``/oidc/callback``, and Authlib exchanges the code and checks the ID token: its signature
against the provider's published keys, its issuer (the one given), its audience (this client
id), its expiry and its nonce. Nothing here checks a token by hand. The e-mail address of the
token (or of the provider's userinfo) must be verified when the provider says so, and, with
``--oidc-allowed-domain``, be at that domain; otherwise the person reads why, in words.

The session is Starlette's ``SessionMiddleware``: a cookie signed with a key derived from the
client secret (every replica with the same secret accepts it, so a session that moves to another
replica stays signed in), HttpOnly, SameSite=Lax (the provider's redirect back is a top-level
navigation), valid for ``session_s`` from sign-in whatever happens meanwhile. ``/oidc/signout``
ends it and, where the provider publishes an ``end_session_endpoint``, offers a link that signs the
person out of the provider too (RP-initiated logout, the ID token as its hint). Every run a
signed-in person starts is logged with their e-mail address.

``/healthz`` is answered before this (a balancer has no session); the Local API's paths need a
signed-in browser too. Runs on the server's event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from desktop.errors import UserError
from desktop.server.gate import browser_scheme
from desktop.server.pages import InsertIntoPage

log = logging.getLogger(__name__)

PREFIX = "/oidc/"
COOKIE = "pipedesk_session"
#: Gradio calls this itself while ``launch()`` starts (see :mod:`desktop.server.gate`).
UNGUARDED = frozenset({"/gradio_api/startup-events"})
SESSION_MINUTES = 480.0
SIGN_IN_FIRST = "Sign in first: open this Pipedesk's address in a browser to sign in."
FAILED = (
    "Signing in did not work: the identity provider's answer could not be verified ({why}). "
    "Try again; if it keeps failing, tell the person who runs this Pipedesk."
)
NOT_ALLOWED = (
    "{email} may not use this Pipedesk: it is open to people with an address at {domain}. "
    "Sign out of your identity provider and sign in with such an address."
)
NO_EMAIL = "Your identity provider did not give a verified e-mail address, which this Pipedesk needs."
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


@dataclass(frozen=True)
class OidcSettings:
    """What ``serve --oidc-*`` gave (checked by :func:`settings_from`)."""

    issuer: str
    client_id: str
    client_secret: str
    allowed_domain: str | None = None
    session_s: float = SESSION_MINUTES * 60

    @property
    def cookie_key(self) -> str:
        """The session cookie's signing key: derived from the client secret, the same on every replica."""
        return hmac.new(self.client_secret.encode(), b"pipedesk session cookie", hashlib.sha256).hexdigest()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from(
    issuer: str | None,
    client_id: str | None,
    secret_file: str | None,
    allowed_domain: str | None = None,
    session_minutes: float | None = None,
) -> OidcSettings | None:
    """The OIDC settings from the command line (None when no ``--oidc-*`` option is given); each
    problem is a UserError saying what to give."""
    if not any((issuer, client_id, secret_file, allowed_domain, session_minutes is not None)):
        return None
    if not (issuer and client_id and secret_file):
        raise UserError(
            "Sign-in through an identity provider needs --oidc-issuer URL, --oidc-client-id ID and "
            "--oidc-client-secret-file FILE together."
        )
    issuer = issuer.strip().rstrip("/")
    parts = urlsplit(issuer)
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))
    ):
        raise UserError(
            f"--oidc-issuer must be the provider's https:// address (http:// only on this computer), not {issuer!r}."
        )
    try:
        secret = Path(secret_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--oidc-client-secret-file {secret_file!r} could not be read ({exc}).") from None
    if not secret:
        raise UserError(
            f"--oidc-client-secret-file {secret_file!r} is empty: it must hold the client secret."
        )
    domain = allowed_domain.strip().lower().lstrip("@") if allowed_domain else None
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise UserError(f"--oidc-allowed-domain takes a domain such as example.org, not {allowed_domain!r}.")
    minutes = SESSION_MINUTES if session_minutes is None else session_minutes
    if not 0 < minutes <= 7 * 24 * 60:
        raise UserError("--oidc-session-minutes must be more than 0 and at most 10080 (a week).")
    return OidcSettings(issuer, client_id.strip(), secret, domain, minutes * 60)


def check_provider(settings: OidcSettings) -> dict[str, Any]:
    """The provider's metadata (``/.well-known/openid-configuration``), fetched at start-up so a
    wrong address stops the server with a sentence instead of failing each visitor."""
    import httpx

    url = f"{settings.issuer}/.well-known/openid-configuration"
    try:
        answer = httpx.get(url, timeout=15)
        answer.raise_for_status()
        metadata = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UserError(f"The identity provider at {settings.issuer} did not answer {url} ({exc}).") from None
    if metadata.get("issuer", "").rstrip("/") != settings.issuer:
        raise UserError(
            f"The identity provider at {settings.issuer} calls itself {metadata.get('issuer')!r}: give "
            "--oidc-issuer exactly as it does."
        )
    return metadata


def person_allowed(claims: dict[str, Any], domain: str | None) -> str:
    """The signed-in person's e-mail address from the ID token's (or userinfo's) ``claims``;
    UserError when there is none, it is unverified, or it is not at ``domain``."""
    email = str(claims.get("email") or "").strip().lower()
    if not email or "@" not in email or claims.get("email_verified") is False:
        raise UserError(NO_EMAIL)
    if domain is not None and email.rpartition("@")[2] != domain:
        raise UserError(NOT_ALLOWED.format(email=email, domain=domain))
    return email


def signed_in_as(email: str) -> str:
    """The corner of the app's page that says who is signed in, with the way to sign out."""
    return (
        '<div id="pd-signed-in" style="position:fixed;bottom:8px;right:12px;z-index:1000;'
        'font:13px/1.4 system-ui,sans-serif;color:#4b5563">'
        f'{html.escape(email)} · <a href="oidc/signout">Sign out</a></div>'
    )


def _page(title: str, text: str, link: str, link_text: str, *more: tuple[str, str]) -> bytes:
    """A small page: a title, a sentence and its links (``link``, then ``more`` (url, words) pairs)."""
    links = "".join(
        f'<p><a href="{html.escape(url)}">{html.escape(words)}</a></p>'
        for url, words in ((link, link_text), *more)
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{links}</body></html>"
    ).encode()


def provider_signout(metadata: dict[str, Any], client_id: str, id_token: str | None) -> str | None:
    """Where the person also signs out of the identity provider (OpenID Connect RP-initiated logout:
    its ``end_session_endpoint`` with the ID token as a hint and this client's id; no
    ``post_logout_redirect_uri``, which the provider would need registered: it shows its own page).
    None when the provider publishes no such endpoint."""
    endpoint = metadata.get("end_session_endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        return None
    query = {"client_id": client_id, **({"id_token_hint": id_token} if id_token else {})}
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


class OidcSignIn:
    """ASGI middleware: ``Middleware(OidcSignIn, settings=..., root_path=...)`` (see the module docstring)."""

    def __init__(self, app: Any, settings: OidcSettings, root_path: str | None = None) -> None:
        from authlib.integrations.starlette_client import OAuth
        from starlette.applications import Starlette
        from starlette.middleware.sessions import SessionMiddleware
        from starlette.routing import Route

        self.app, self.settings = app, settings
        self.root = urlsplit(root_path).path if root_path else ""
        self.base = root_path if root_path and "://" in root_path else None
        oauth = OAuth()
        self.client = oauth.register(
            "provider",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email", "code_challenge_method": "S256"},
        )
        #: The issuer the ID token must name: the one given, whatever the metadata says.
        self.claims_options = {"iss": {"essential": True, "values": [settings.issuer]}}
        routes = Starlette(
            routes=[
                Route(f"{PREFIX}login", self._login),
                Route(f"{PREFIX}callback", self._callback),
                Route(f"{PREFIX}signout", self._signout),
            ]
        )
        self._routes = routes
        # The session cookie is Secure where the browser came over https (TLS ends at the proxy).
        self._sessions = {
            secure: SessionMiddleware(
                self._dispatch,
                secret_key=settings.cookie_key,
                session_cookie=COOKIE,
                max_age=int(settings.session_s) or 1,
                same_site="lax",
                https_only=secure,
            )
            for secure in (False, True)
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in UNGUARDED:
            await self.app(scope, receive, send)
            return
        secure = (self.base or "").startswith("https://") or browser_scheme(scope) == "https"
        await self._sessions[secure](scope, receive, send)

    def _url(self, request: Any, path: str) -> str:
        """This server's address for ``path`` as the browser reaches it (behind a proxy too)."""
        if self.base:
            return f"{self.base}{path}"
        scheme = browser_scheme(request.scope)
        return f"{scheme}://{request.headers.get('host', request.url.netloc)}{self.root}{path}"

    async def _dispatch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, RedirectResponse

        if scope["type"] == "http" and scope.get("path", "").startswith(PREFIX):
            await self._routes(scope, receive, send)
            return
        session = scope.get("session") or {}
        email, until = session.get("email"), session.get("until", 0)
        if email and time.time() < until:
            scope["pipedesk.person"] = email
            if scope["type"] == "http" and scope.get("method") == "POST":
                receive = await self._log_run(scope, receive, email)
            await InsertIntoPage(self.app, signed_in_as(email))(scope, receive, send)  # the app's page only
            return
        session.clear()  # an expired session is forgotten, not refreshed
        request = Request(scope, receive)
        if (
            scope["type"] == "http"
            and scope.get("method") == "GET"
            and "text/html" in request.headers.get("accept", "")
        ):
            target = self._url(request, f"{PREFIX}login?next={quote(scope.get('path', '/'))}")
            answer: Any = RedirectResponse(target, status_code=303)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": SIGN_IN_FIRST[:120]})
            return
        else:
            answer = PlainTextResponse(SIGN_IN_FIRST, status_code=401)
        await answer(scope, receive, send)

    async def _login(self, request: Any) -> Any:
        next_path = request.query_params.get("next", "/")
        request.session.clear()
        request.session["next"] = (
            next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
        )
        return await self.client.authorize_redirect(request, self._url(request, f"{PREFIX}callback"))

    async def _callback(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse, RedirectResponse

        again = self._url(request, f"{PREFIX}login")
        if "error" in request.query_params:
            why = request.query_params.get("error_description") or request.query_params["error"]
            return HTMLResponse(
                _page("Not signed in", f"The identity provider said: {why}.", again, "Try again"), 401
            )
        try:
            token = await self.client.authorize_access_token(request, claims_options=self.claims_options)
            claims = dict(token.get("userinfo") or {})
            if not claims.get("email"):
                claims.update(await self.client.userinfo(token=token))
        except Exception as exc:  # Authlib's and joserfc's refusals, and a provider out of reach
            log.warning("OIDC sign-in refused: %s: %s", type(exc).__name__, exc)
            text = FAILED.format(why=type(exc).__name__)
            return HTMLResponse(_page("Not signed in", text, again, "Try again"), 401)
        try:
            email = person_allowed(claims, self.settings.allowed_domain)
        except UserError as exc:
            log.warning("OIDC sign-in refused for %s: %s", claims.get("email"), exc)
            request.session.clear()
            signout = self._url(request, f"{PREFIX}signout")
            return HTMLResponse(_page("Not allowed", str(exc), signout, "Sign out"), 403)
        next_path = request.session.get("next", "/")
        request.session.clear()
        request.session.update(
            # The ID token is kept for signing out of the provider too (its hint, see provider_signout).
            {
                "email": email,
                "until": time.time() + self.settings.session_s,
                "id_token": token.get("id_token"),
            }
        )
        log.info("%s signed in (OpenID Connect)", email)
        return RedirectResponse(self._url(request, next_path), 303)

    async def _signout(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        email, id_token = request.session.get("email"), request.session.get("id_token")
        request.session.clear()
        if email:
            log.info("%s signed out", email)
        again = self._url(request, f"{PREFIX}login")
        try:
            metadata = await self.client.load_server_metadata()  # fetched once, then kept by Authlib
        except Exception as exc:  # the provider out of reach: signing out of Pipedesk still works
            log.warning("The identity provider's metadata could not be read: %s", exc)
            metadata = {}
        provider = provider_signout(metadata, self.settings.client_id, id_token)
        more = [(provider, "Sign out of your identity provider too")] if provider else []
        return HTMLResponse(
            _page("Signed out", "You are signed out of this Pipedesk.", again, "Sign in again", *more)
        )

    async def _log_run(self, scope: dict[str, Any], receive: Any, email: str) -> Any:
        """Log a run a signed-in person starts, with their e-mail; returns ``receive`` (replayed)."""
        from desktop.server import bodies

        path = scope.get("path", "")
        name = None
        if "/call/" in path or "/run/" in path:
            name = path.rstrip("/").rpartition("/")[2]
        elif path.endswith("/queue/join") or path.startswith(("/v1/", "/mcp")):
            body = await bodies.read_body(receive)  # already bounded by the server's gate
            receive = bodies.replay(body, receive)
            name = path if path.startswith(("/v1/", "/mcp")) else _event_name(scope, body)
        if name:
            log.info("Run by %s: %s", email, name)
        return receive


def _event_name(scope: dict[str, Any], body: bytes) -> str | None:
    """The API name of the event a ``queue/join`` body starts (its ``fn_index``), if it is one."""
    try:
        index = json.loads(body).get("fn_index")
        blocks = scope["app"].get_blocks()
        function = blocks.fns[index]
    except Exception:  # not an event this app knows: Gradio answers it
        return None
    return getattr(function, "api_name", None) or getattr(function, "name", None) or f"event {index}"
