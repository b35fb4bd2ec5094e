"""Start and stop the Gradio server.

``start`` returns at once (``prevent_thread_lock``): uvicorn serves from its own
background thread while the caller's thread goes on (the window, or a wait
loop for ``pipedesk serve``).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
MAX_UPLOAD = "50mb"


def free_port(host: str = LOCAL_HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running Gradio app."""

    blocks: gr.Blocks
    host: str
    port: int

    @property
    def url(self) -> str:
        host = LOCAL_HOST if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        """Close the listener (the port is free when this returns) and stop serving."""
        self.blocks.close(verbose=False)


def start(
    blocks: gr.Blocks,
    host: str = LOCAL_HOST,
    port: int | None = None,
    **options: Any,
) -> Server:
    """Serve ``blocks`` on ``host:port`` (a free port when None) and return once it answers."""
    from desktop.ui.app import launch_options

    port = port or free_port(LOCAL_HOST if host in ("0.0.0.0", "") else host)
    blocks.queue(default_concurrency_limit=4)
    kwargs: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "prevent_thread_lock": True,
        "inbrowser": False,
        "quiet": True,
        "show_error": True,
        "max_file_size": MAX_UPLOAD,
        "enable_monitoring": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        **launch_options(),
    }
    kwargs.update(options)
    blocks.launch(**kwargs)
    log.info("Serving on %s:%s", host, port)
    return Server(blocks=blocks, host=host, port=port)
