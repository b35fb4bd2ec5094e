"""Helpers shared by the tests (and by build/screenshots.py and the benchmarks): paths, skips, the CLI.

Fixtures live in ``tests/conftest.py``; the modules here are plain code: ``tiny_models`` (the tiny
real models and their cache), ``hub_server`` (a local Hub), ``window_driver`` (the desktop window
under Xvfb) and ``pages`` (the task tabs in a browser). Everything runs on the calling thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
