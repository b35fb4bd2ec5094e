"""Helpers shared by the tests (and by build/screenshots.py and the benchmarks): paths, skips, the CLI.

Fixtures live in ``tests/conftest.py``; the modules here are plain code: ``tiny_models`` (the tiny
real models and their cache), ``hub_server`` (a local Hub), ``window_driver`` (the desktop window
under Xvfb) and ``pages`` (the task tabs in a browser). Everything runs on the calling thread.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.support.hub_server import HubServer

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip with ``reason`` when ``condition`` is false; fail instead under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port nobody listens on, below the kernel's ephemeral range.

    A test picks a port and a server binds it seconds later. A port from ``bind(0)`` lies in the
    ephemeral range, and meanwhile an outgoing connection (the test's own clients) may take it as
    its source port: sharing then said "Port ... is already used" (1 run in about 10 here)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default; macOS and Windows start theirs at 49152
    for port in random.sample(range(20_000, max(low, 20_500)), 500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))  # sharing listens on every interface
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def cli_env(home: Path, hub: HubServer | None = None, **extra: str) -> dict[str, str]:
    """The environment for running ``pipedesk`` as a subprocess in a test."""
    env = dict(os.environ)
    env["PIPEDESK_HOME"] = str(home)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 240, stdin: str | None = None):
    """Run ``python -m desktop ARGS`` and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        cwd=ROOT,
    )


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def engine_pid(parent: int) -> int | None:
    """The engine process of the app ``parent`` (its child started by multiprocessing's spawn, not
    multiprocessing's resource tracker), or None."""
    for task in Path(f"/proc/{parent}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # that thread ended between the listing and the read
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue
            if b"spawn_main" in command:
                return int(child)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.01) -> Any:
    """Poll ``condition()`` until it is truthy and return that value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)
    return found
