"""Sticky sessions for replicas behind a load balancer: the ``pipedesk_replica`` cookie.

Gradio's queue keeps a session (its event stream, its running requests, its files) in the process
that started it, so every request of a session must reach the same replica. Each public replica
(``pipedesk serve --public --replica-id ID``) answers with a ``pipedesk_replica=ID`` cookie whenever a
request does not already carry its own id, and names itself in an ``X-Pipedesk-Replica`` header.
The balancer routes on that cookie: nginx OSS with ``map $cookie_pipedesk_replica $backend``
(an id to the replica's address, anything else to the pool), HAProxy with ``cookie pipedesk_replica``.
A browser keeps the cookie; ``gradio_client`` keeps the cookies of its first ``/config`` answer.

The id says which replica answered and nothing else (no secret: routing only). Pure ASGI
middleware added by :func:`desktop.server.start`; runs on the server's event loop.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from desktop.errors import UserError
from desktop.server.gate import browser_scheme, cookies_of

COOKIE = "pipedesk_replica"
HEADER = b"x-pipedesk-replica"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_id(value: str) -> str:
    """``--replica-id``: letters, digits, ``.``, ``_`` and ``-`` (a cookie's value and an nginx map key)."""
    value = value.strip()
    if not _ID.fullmatch(value):
        raise UserError(
            f"--replica-id must be 1 to 63 letters, digits, '.', '_' or '-' (starting with a letter or "
            f"digit), not {value!r}."
        )
    return value


def default_id(port: int) -> str:
    """This replica's id when none is given: this computer's name and the port (``web1-7861``)."""
    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname().split(".")[0]).strip("-.") or "replica"
    return f"{name[:50]}-{port}"


def _cookie_of(scope: dict[str, Any]) -> str | None:

    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            found = cookies_of(value.decode("latin-1")).get(COOKIE)
            if found is not None:
                return found
    return None


class ReplicaCookie:
    """ASGI middleware: name this replica in every answer; set the cookie where it is missing or
    names another replica (one that stopped: the balancer sent the request here instead)."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app, self.replica = app, replica
        self.set_cookie = f"{COOKIE}={replica}; Path=/; HttpOnly; SameSite=Lax".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        known = _cookie_of(scope) == self.replica

        async def named(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (HEADER, self.replica.encode())]
                if not known:  # Secure where the browser came over https (a TLS-ending proxy)
                    secure = b"; Secure" if browser_scheme(scope) == "https" else b""
                    headers.append((b"set-cookie", self.set_cookie + secure))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, named)
