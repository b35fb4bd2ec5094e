"""Shared fixtures: tiny real models, a local Hub server, a running app, a browser.

Nothing here reaches the internet: models are built by ``tiny_models`` in
seconds and served under their real Hub ids by ``hub_server`` on 127.0.0.1,
and the real huggingface_hub client downloads them from there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before desktop (or anything that reads them) is imported: a throw-away home for the session.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="pipedesk-tests-"))
os.environ["PIPEDESK_HOME"] = str(_SESSION_HOME / "home")
for _var in ("HF_HUB_OFFLINE", "HF_TOKEN", "PIPEDESK_DEVICE", "PIPEDESK_MEMORY_BUDGET_MB"):
    os.environ.pop(_var, None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

from hub_server import HubServer  # noqa: E402
from tiny_models import build_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).parent / ".artifacts"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip with ``reason`` when ``condition`` is false; fail instead under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """Tiny real models under their real Hub ids, built once (cached by the builder's hash)."""
    digest = hashlib.sha256((Path(__file__).parent / "tiny_models.py").read_bytes()).hexdigest()[:12]
    target = ARTIFACTS / f"tiny-models-{digest}"
    done = target / ".complete"
    if not done.exists():
        shutil.rmtree(target, ignore_errors=True)
        built = build_all(target)
        (target / "index.txt").write_text(
            "\n".join(f"{repo}\t{path.name}" for repo, path in built.items()), encoding="utf-8"
        )
        done.touch()
    index = (target / "index.txt").read_text(encoding="utf-8").splitlines()
    return {repo: target / name for repo, name in (line.split("\t") for line in index)}


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
    from desktop.ui.app import build_app

    running = server.start(build_app(runtime))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(app_server):
    """A gradio_client.Client connected to the running app."""
    from gradio_client import Client

    return Client(app_server.url, verbose=False, download_files=False)


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
