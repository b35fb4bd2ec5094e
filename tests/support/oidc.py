"""A real OpenID Connect provider on loopback for the sign-in tests: the PyPI package
``oidc-provider-mock`` (Authlib's provider, Flask, on a thread), and the authorization code flow
against it done by hand, to get real ID tokens signed by it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support import free_port


@contextlib.contextmanager
def provider() -> Iterator[str]:
    """A provider on ``localhost``; yields its issuer (``http://localhost:PORT``)."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=free_port()) as server:
        yield f"http://localhost:{server.server_port}"


def id_token(issuer: str, client_id: str, email: str, nonce: str) -> dict:
    """The token answer (with its ``id_token``) ``issuer`` gives ``client_id`` for ``email``."""
    redirect = "http://127.0.0.1:9/callback"
    query = {
        "client_id": client_id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid email",
        "nonce": nonce,
        "state": "s",
    }
    with httpx.Client(timeout=30) as http:
        answer = http.post(f"{issuer}/oauth2/authorize", params=query, data={"sub": email})
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        token = http.post(
            f"{issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(client_id, "any secret"),
        )
        assert token.status_code == 200, token.text
        return token.json()
