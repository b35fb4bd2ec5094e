"""Debian's nginx (nginx-light) started by a test: its own prefix folder, loopback only, in front of
the servers the test names. ``.ci/run`` installs it; the tests that need it skip without it (fail
under CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import need

MAIN = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{http}
}}
"""


def start_nginx(root: Path, http: str, port: int) -> subprocess.Popen:
    """nginx with ``http`` as its ``http {}`` block (``{root}`` in it is ``root``), answering on
    ``127.0.0.1:port`` (the block's ``listen``); returns once it answers."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    need(os.path.exists(binary), "nginx is not installed (apt-get install nginx-light)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "nginx.conf").write_text(MAIN.format(root=root, http=http.replace("{root}", str(root))))
    process = subprocess.Popen([binary, "-c", str(root / "nginx.conf"), "-p", str(root)])
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/nginx-started", timeout=2)
            return process
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, (root / "error.log").read_text()
            time.sleep(0.1)


def stop_nginx(process: subprocess.Popen) -> None:
    """Stop an nginx :func:`start_nginx` started."""
    process.terminate()
    process.wait(timeout=20)
