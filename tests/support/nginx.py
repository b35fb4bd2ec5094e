"""Debian's nginx (nginx-light) and HAProxy started by a test: their own folder, loopback only, in
front of the servers the test names. ``.ci/run`` installs both; the tests that need them skip
without them (fail under CI)."""

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

#: How the README's recipes pass requests on (``PASS_ON`` in a test's config): the Host as the
#: visitor sent it (the gate compares it with the page's Origin), the event streams unbuffered, time
#: for long generations.
PASS_ON = """
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_buffering off;
        proxy_read_timeout 600s;
"""


def start_nginx(root: Path, http: str, port: int) -> subprocess.Popen:
    """nginx with ``http`` as its ``http {}`` block (``{root}`` in it is ``root``, ``PASS_ON`` is
    :data:`PASS_ON`), answering on
    ``127.0.0.1:port`` (the block's ``listen``); returns once it answers."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    need(os.path.exists(binary), "nginx is not installed (apt-get install nginx-light)")
    root.mkdir(parents=True, exist_ok=True)
    http = http.replace("{root}", str(root)).replace("PASS_ON", PASS_ON)
    (root / "nginx.conf").write_text(MAIN.format(root=root, http=http))
    process = subprocess.Popen([binary, "-c", str(root / "nginx.conf"), "-p", str(root)])
    _wait_answering(process, port, root / "error.log")
    return process


def start_haproxy(root: Path, config: str, port: int) -> subprocess.Popen:
    """HAProxy with ``config`` (its ``defaults``, ``frontend`` and ``backend`` sections), in the
    foreground, answering on ``127.0.0.1:port``; returns once it answers."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    need(os.path.exists(binary), "HAProxy is not installed (apt-get install haproxy)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "haproxy.cfg").write_text(config)
    process = subprocess.Popen([binary, "-db", "-f", str(root / "haproxy.cfg")])
    _wait_answering(process, port, root / "haproxy.cfg")
    return process


def _wait_answering(process: subprocess.Popen, port: int, said: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, said.read_text()
            time.sleep(0.1)


def stop_nginx(process: subprocess.Popen) -> None:
    """Stop an nginx :func:`start_nginx` started."""
    process.terminate()
    process.wait(timeout=20)
