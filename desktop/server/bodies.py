"""Request bodies as they stream in: counted against a limit, files counted one by one, a JSON body
read whole (it is small) and checked before the app parses it; used by the gate in front of every
server (:mod:`desktop.server.gate`) and the visitors' gate (:mod:`desktop.share.gate`).

Pure ASGI plumbing: it runs on the server's event loop and keeps no state beyond one request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from desktop.server.api_door import error_body, is_api_path

#: Objects and lists in one JSON body: a task request holds a few, a long chat a few hundred.
MAX_CONTAINERS = 10_000


class BodyRefused(Exception):
    """Raised into the app when a body streams past its limit; the gate answers 413 instead."""


class FileParts:
    """Counts the parts of a multipart body as it streams by (python-multipart's parser, which
    Gradio and Starlette read uploads with): the words of a refusal once more than ``max_files``
    parts carry a file, or more than ``max_fields`` others, or the body is not multipart."""

    def __init__(self, boundary: bytes, max_files: int, max_fields: int) -> None:
        from python_multipart.multipart import MultipartParser

        self.max_files, self.max_fields = max_files, max_fields
        self.files = self.fields = 0
        self._header = b""
        self._value = b""
        self._is_file = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda data, start, end: self._add("_header", data[start:end]),
                "on_header_value": lambda data, start, end: self._add("_value", data[start:end]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data[:1024])

    def _begin(self) -> None:
        self._is_file = False

    def _header_end(self) -> None:
        if self._header.strip().lower() == b"content-disposition" and b"filename" in self._value.lower():
            self._is_file = True
        self._header = self._value = b""

    def _headers_finished(self) -> None:
        if self._is_file:
            self.files += 1
        else:
            self.fields += 1

    def feed(self, chunk: bytes) -> str | None:
        """Read ``chunk``; the refusal's words, or None while within the limits."""
        try:
            self.parser.write(chunk)
        except Exception:  # python-multipart's errors: a body that is not the multipart it says
            return "The files sent could not be read: the request is not well-formed."
        if self.files > self.max_files:
            return f"Too many files in one request: at most {self.max_files}."
        if self.fields > self.max_fields:
            return "Too many form fields in one request."
        return None


class CountedBody:
    """``receive`` for the app, counting body bytes (and multipart files) as they arrive.

    Past ``limit`` bytes, more files than ``parts`` allows, or when ``account(n)`` (told of each
    chunk's size) returns words, the body is refused: :func:`serve_counted` answers 413.
    """

    def __init__(
        self,
        receive: Any,
        limit: int,
        too_large: str,
        parts: FileParts | None = None,
        account: Callable[[int], str | None] | None = None,
    ) -> None:
        self.receive = receive
        self.limit = limit
        self.too_large = too_large
        self.parts = parts
        self.account = account
        self.seen = 0
        self.refused: str | None = None

    async def __call__(self) -> dict[str, Any]:
        if self.refused is not None:
            raise BodyRefused(self.refused)
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        chunk = message.get("body", b"")
        self.seen += len(chunk)
        if self.seen > self.limit:
            self.refused = self.too_large
        elif self.account is not None:
            self.refused = self.account(len(chunk))
        if self.refused is None and self.parts is not None and chunk:
            self.refused = self.parts.feed(chunk)
        if self.refused is not None:
            raise BodyRefused(self.refused)
        return message


async def read_body(receive: Any) -> bytes:
    """The whole body of a request (its size is already bounded by the receive it reads)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyRefused("The request ended before its body was sent.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives ``body`` once, then what ``receive`` gives (a disconnect)."""
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


#: A JSON string, its closing quote optional: one left-to-right pass, never a second try.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def too_many_containers(body: bytes, limit: int = MAX_CONTAINERS) -> bool:
    """True when the JSON ``body`` holds more than ``limit`` objects and lists (strings, where a
    brace is only a character, are not counted); a quick upper bound is tried first."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    bare = _JSON_STRING.sub(b"", body)
    return bare.count(b"{") + bare.count(b"[") > limit


async def serve_counted(app: Any, scope: dict[str, Any], send: Any, body: CountedBody) -> None:
    """Run ``app`` reading its body through ``body``; once that refuses, answer 413 with its words
    (in place of whatever the app says about a body it could not read)."""
    started = False

    async def answer(message: dict[str, Any]) -> None:
        nonlocal started
        if body.refused is not None:
            if not started:
                started = True
                await refuse(scope, send, 413, body.refused)
            return
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, body, answer)
    except Exception:
        if body.refused is None:
            raise
    if body.refused is not None and not started:
        await refuse(scope, send, 413, body.refused)


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a multipart ``Content-Type`` (None when the body is not multipart)."""
    if not content_type.lower().startswith("multipart/"):
        return None
    for piece in content_type.split(";")[1:]:
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


async def refuse(
    scope: dict[str, Any], send: Any, status: int, text: str, headers: list | None = None
) -> None:
    """Answer with ``status`` and ``text`` (a websocket handshake is closed instead: HTTP 403; on the
    API paths, the text in OpenAI's error shape)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
        return
    api = is_api_path(scope.get("path", ""))
    body = error_body(status, text) if api else text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json" if api else b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
