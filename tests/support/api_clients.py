"""The real clients of the Local API, as other programs use them: the official ``openai`` package and
the ``mcp`` SDK's client over streamable HTTP (optionally sending from another source address,
like a device on the LAN), and ``pipedesk serve`` as a process. Runs on the calling thread (the
MCP client on an event loop of its own, for one call).
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import ROOT, cli_env, free_port


def openai_client(url: str, key: str | None = None, source: str | None = None) -> Any:
    """An ``openai.OpenAI`` for the server at ``url`` (its ``/v1``), sending ``key`` (none: a
    placeholder no server takes), from ``source`` when given. No retries: a refusal shows at once."""
    import httpx2
    import openai

    transport = httpx2.HTTPTransport(local_address=source) if source else None
    http = httpx2.Client(transport=transport, timeout=120) if transport else None
    return openai.OpenAI(
        base_url=url.rstrip("/") + "/v1", api_key=key or "no-key", max_retries=0, http_client=http
    )


def mcp(url: str, work: Callable[[Any], Any], key: str | None = None, source: str | None = None) -> Any:
    """Run ``await work(client)`` with an ``mcp.Client`` connected to ``url``'s ``/mcp``."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def session() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"} if key else None)
        if source:
            http = httpx2.AsyncClient(
                headers=http.headers,
                timeout=http.timeout,
                transport=httpx2.AsyncHTTPTransport(local_address=source),
            )
        async with http, Client(streamable_http_client(url.rstrip("/") + "/mcp", http_client=http)) as client:
            return await work(client)

    # A thread of its own: a Playwright page in the same test session keeps an event loop running in
    # this thread, and anyio cannot start another one in it.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, session).result()


def tool_call(url: str, name: str, arguments: dict[str, Any], **how: Any) -> Any:
    """One MCP tool call; its ``CallToolResult``."""

    async def call(client: Any) -> Any:
        return await client.call_tool(name, arguments)

    return mcp(url, call, **how)


class Serve:
    """``pipedesk serve`` as a process (``python -m desktop serve ARGS`` on a free port)."""

    def __init__(self, home: Path, hub: Any, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "desktop", "serve", "--port", str(free_port()), *args],
            env=cli_env(home, hub),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any("Local API:" in line for line in lines):
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        self.text = "".join(lines)
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", self.text)  # the app's address, first
        assert found and "Local API:" in self.text, self.text
        self.url = found.group(1)
        token = re.search(r"X-Pipedesk-Token: (\S+)", self.text)
        self.token = token.group(1) if token else None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)
