"""A browser as a LAN visitor: an HTTP proxy that reaches Pipedesk from 127.0.0.2.

A browser on this machine that opens ``http://127.0.0.2:PORT/`` connects from 127.0.0.1 (the
kernel picks that source address), so the sharing server would see this computer, not a visitor.
Chromium cannot choose its source address, but it can use a proxy: :class:`VisitorProxy` listens
on 127.0.0.1 and opens each connection onward *from* 127.0.0.2. It forwards plain HTTP only, one
request per connection (it asks for ``Connection: close``), streams both ways (Gradio's event
streams included) and refuses any address outside 127.0.0.0/8. Runs its own event loop on a
thread; ``with VisitorProxy() as proxy`` starts and stops it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from urllib.parse import urlsplit

SOURCE = "127.0.0.2"
_HOP_BY_HOP = (b"proxy-connection", b"connection", b"keep-alive")


class VisitorProxy:
    """An HTTP proxy on 127.0.0.1 whose onward connections come from :data:`SOURCE`."""

    def __init__(self, source: str = SOURCE) -> None:
        self.source = source
        self.url = ""
        self.requests: list[str] = []  # "METHOD URL" of each request forwarded
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="visitor-proxy", daemon=True)

    def __enter__(self) -> VisitorProxy:
        self._thread.start()
        assert self._ready.wait(10), "the visitor proxy did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            request_line, *lines = head[:-4].split(b"\r\n")
            method, target, version = request_line.split(b" ", 2)
            url = urlsplit(target.decode("latin-1"))
            if method == b"CONNECT" or url.scheme != "http" or not url.hostname:
                writer.write(
                    b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            if not ipaddress.ip_address(url.hostname).is_loopback:  # never anywhere but this machine
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self.requests.append(f"{method.decode()} {url.geturl()}")
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = [line for line in lines if line.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP]
            upstream_reader, upstream_writer = await asyncio.open_connection(
                url.hostname, url.port or 80, local_addr=(self.source, 0)
            )
            upstream_writer.write(
                b"\r\n".join(
                    [b" ".join([method, path.encode("latin-1"), version]), *kept, b"Connection: close"]
                )
                + b"\r\n\r\n"
            )
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (
            OSError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.TimeoutError,
        ):
            pass
        finally:
            writer.close()


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            target.write(chunk)
            await target.drain()
    except OSError:
        pass
    finally:
        try:
            target.write_eof() if target.can_write_eof() else target.close()
        except OSError:
            pass
