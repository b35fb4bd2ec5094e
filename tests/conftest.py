"""Shared fixtures: tiny real models, a local Hub server, a running app, a browser, an X display.

Nothing here reaches the internet: models are built by ``tests.support.tiny_models``
in seconds and served under their real Hub ids by ``tests.support.hub_server`` on
127.0.0.1, and the real huggingface_hub client downloads them from there. Plain
helpers (paths, ``need``, ``cli_env``, ``run_cli``, page and window drivers) live in
``tests.support``; tests import them from there, never from another test file.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before desktop (or anything that reads them) is imported: a throw-away home for the session.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="pipedesk-tests-"))
os.environ["PIPEDESK_HOME"] = str(_SESSION_HOME / "home")
for _var in ("HF_HUB_OFFLINE", "HF_TOKEN", "PIPEDESK_DEVICE", "PIPEDESK_MEMORY_BUDGET_MB"):
    os.environ.pop(_var, None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, IN_CI, ROOT, need  # noqa: E402
from tests.support.build_script import BUILD_TIMEOUT, build_module  # noqa: E402
from tests.support.hub_server import HubServer  # noqa: E402
from tests.support.tiny_models import cached_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """Tiny real models under their real Hub ids, built once (cached by the builder's hash)."""
    return cached_models()


@pytest.fixture(scope="session")
def hub(tiny_models: dict[str, Path]) -> Iterator[HubServer]:
    """The local Hub, with ``HF_ENDPOINT`` pointing at it for the whole session."""
    server = HubServer(tiny_models).start()
    os.environ["HF_ENDPOINT"] = server.url
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def pipedesk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty PIPEDESK_HOME: no test touches the real folders."""
    home = tmp_path / "home"
    monkeypatch.setenv("PIPEDESK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    """One models folder for the session's long-lived app, so models download once."""
    return _SESSION_HOME / "shared-models"


@pytest.fixture(scope="session")
def runtime(hub: HubServer, shared_models_dir: Path):
    """A CPU runtime whose store downloads from the local Hub into the shared models folder."""
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    return Runtime(device="cpu", store=ModelStore(shared_models_dir))


@pytest.fixture(scope="session")
def app_server(runtime):
    """The real Gradio app on 127.0.0.1, for gradio_client and the browser."""
    from desktop import server
    from desktop.engine.start import local_door
    from desktop.ui.app import build_app

    running = server.start(build_app(local_door(runtime)))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(app_server):
    """A gradio_client.Client connected to the running app."""
    from gradio_client import Client

    return Client(app_server.url, verbose=False, download_files=False)


@pytest.fixture(scope="session")
def playwright_session():
    """One Playwright for the whole session (its sync API cannot run twice at once)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package is not installed")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_session):
    """Headless Debian Chromium driven by Playwright (its own browser download fails here)."""
    need(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    instance = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private X display (Xvfb picks a free number and tells us through a pipe)."""
    yield from _xvfb("1280x900")


@pytest.fixture(scope="module")
def laptop_display() -> Iterator[str]:
    """A private X display the size of a small laptop's screen (1366x768)."""
    yield from _xvfb("1366x768")


def _xvfb(size: str) -> Iterator[str]:
    for tool in ("Xvfb", "xdotool", "import"):
        need(shutil.which(tool) is not None, f"{tool} is not installed (Debian: xvfb, xdotool, imagemagick)")
    try:
        ctypes.CDLL("libX11.so.6")
    except OSError:
        need(False, "libX11 is not installed (Debian: libx11-6)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    # Ready means a client can connect (on a loaded machine the socket can lag the pipe).
    deadline = time.monotonic() + 20
    while True:
        assert xvfb.poll() is None, "Xvfb exited right after starting"
        probe = subprocess.run(
            ["xdotool", "getdisplaygeometry"],
            env={**os.environ, "DISPLAY": f":{number}"},
            capture_output=True,
            timeout=10,
        )
        if probe.returncode == 0:
            break
        assert time.monotonic() < deadline, f"display :{number} never accepted a connection"
        time.sleep(0.2)
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


@pytest.fixture(scope="session")
def packaged_app(tiny_models) -> Path:
    """``dist/Pipedesk/Pipedesk``, built once with every tiny model bundled under its Hub id.

    The build tests and the installers' tests (which package this same app) share it.

    ``PIPEDESK_REUSE_BUILD=1`` reuses an existing build (while working on these tests).
    """
    need(
        importlib.util.find_spec("PyInstaller") is not None,
        "PyInstaller is not installed (pip install -e '.[dev]')",
    )
    build = build_module()
    exe = build.executable()
    if os.environ.get("PIPEDESK_REUSE_BUILD") == "1" and exe.is_file() and not IN_CI:
        return exe
    command = [sys.executable, str(ROOT / "build" / "build.py")]
    for repo, folder in tiny_models.items():
        command += ["--bundle-model", f"{repo}={folder}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "build-output.txt").write_text(done.stdout, encoding="utf-8")
    assert exe.is_file()
    return exe


# --- a second host, in a network namespace ------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture
def lan_namespace():
    """A namespace joined to this one by a veth pair: 10.77.N.1 here, 10.77.N.2 over there."""
    need(shutil.which("ip") is not None, "iproute2 (ip) is not installed")
    n = os.getpid() % 200 + 20
    name, here, there = f"pdlan{os.getpid()}", f"pdh{os.getpid()}"[:15], f"pdt{os.getpid()}"[:15]
    made = _ip("netns", "add", name)
    need(made.returncode == 0, f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        for step in (
            ("link", "add", here, "type", "veth", "peer", "name", there),
            ("link", "set", there, "netns", name),
            ("addr", "add", f"10.77.{n}.1/24", "dev", here),
            ("link", "set", here, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"10.77.{n}.2/24", "dev", there),
            ("netns", "exec", name, "ip", "link", "set", there, "up"),
            ("netns", "exec", name, "ip", "link", "set", "lo", "up"),
        ):
            done = _ip(*step)
            need(done.returncode == 0, f"ip {' '.join(step)}: {done.stderr.strip()}")
        yield name, f"10.77.{n}.1", f"10.77.{n}.2"
    finally:
        _ip("link", "del", here)
        _ip("netns", "del", name)
