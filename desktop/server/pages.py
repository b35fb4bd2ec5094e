"""Pipedesk's own HTML in Gradio's page: a fragment put first in the body of the app's page.

:class:`InsertIntoPage` is ASGI middleware (``Middleware(InsertIntoPage, fragment=...)`` in a
server's ``app_kwargs``): the answer to ``GET /`` (Gradio's page, HTML, 200) gets ``fragment``
right after its ``<body>`` tag, so it is drawn with the page's first frame, before Gradio's own
scripts run. Every other request passes untouched. The window's splash
(:mod:`desktop.shell.splash`) and the LAN visitors' "sharing was switched off" watcher
(:mod:`desktop.share.signin`) come this way. Runs on the server's event loop.
"""

from __future__ import annotations

import re
from typing import Any

_BODY = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)


def insert_first_in_body(page: bytes, fragment: bytes) -> bytes:
    """``page`` (an HTML document) with ``fragment`` first in its body; unchanged if it has none."""
    found = _BODY.search(page)
    if found is None:
        return page
    return page[: found.end()] + fragment + page[found.end() :]


class InsertIntoPage:
    """ASGI middleware: ``fragment`` first in the body of the app's page (see the module docstring)."""

    def __init__(self, app: Any, fragment: str) -> None:
        self.app = app
        self.fragment = fragment.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") != "/":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                html = headers.get(b"content-type", b"").lower().startswith(b"text/html")
                encoded = headers.get(b"content-encoding", b"identity").lower() != b"identity"
                if message["status"] == 200 and html and not encoded:
                    held["start"] = message
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = insert_first_in_body(b"".join(chunks), self.fragment)
                start = held.pop("start")
                headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewrite)
