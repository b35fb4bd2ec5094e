"""The headless recipes in the README: a Space's app.py and a Procfile's web line.

Both start a real server; the test talks to it only on 127.0.0.1.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

from conftest import ROOT, cli_env
from test_cli import _wait_for

from desktop.server import free_port


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)


def test_space_app_py_serves_on_the_port_spaces_give(hub, pipedesk_home):
    port = free_port()
    env = cli_env(pipedesk_home, hub, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "sentiment" in _wait_for(f"http://127.0.0.1:{port}/config", proc)
    finally:
        _stop(proc)


def test_procfile_web_line_serves_on_dollar_port(hub, pipedesk_home):
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    port = free_port()
    command = shlex.split(line.removeprefix("web:").strip().replace("$PORT", str(port)))
    assert command[:4] == ["python", "-m", "desktop", "serve"] and "0.0.0.0" in command
    command[0] = sys.executable
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=cli_env(pipedesk_home, hub, PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "sentiment" in _wait_for(f"http://127.0.0.1:{port}/config", proc)
    finally:
        _stop(proc)
