"""Public deployments (a Space's app.py, a Procfile's web line, ``pipedesk serve --host 0.0.0.0``),
attacked as an outsider would.

Every server here binds 0.0.0.0 (or its own loopback port); the tests send traffic only to
127.0.0.1. What they prove: a public server serves the visitors' app (no Models or Sharing tab,
none of their handlers, installed models only, no folder paths), with sign-in when asked, the
models it was told to serve downloaded before it answers, and the addresses it really listens on.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from desktop.cli import public
from desktop.cli import serve as serve_command
from desktop.engine.start import open_door
from desktop.errors import UserError
from desktop.share import controller as sharing
from tests.support import ROOT, cli_env, free_port, run_cli

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
STARS = "nlptown/bert-base-multilingual-uncased-sentiment"
READY_LINE = "Ctrl+C to stop"
#: Words in the names of the owner's own endpoints (Models and Sharing tabs).
OWNER_WORDS = re.compile(r"model|download|delete|import|setting|shar|password|switch|offline|folder|dir")


class Served:
    """A server process started by a test, its output collected as it comes."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.text:
                return self.text
            assert self.proc.poll() is None, f"the server exited:\n{self.text}"
            time.sleep(0.2)
        raise AssertionError(f"not ready in {timeout}s:\n{self.text}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def _config(port: int, http: httpx.Client | None = None) -> dict:
    response = (http or httpx.Client(timeout=30)).get(f"http://127.0.0.1:{port}/config")
    assert response.status_code == 200, response.text
    return response.json()


def _owner_only(config: dict) -> tuple[set[str], set[str]]:
    """Elem ids and tab labels of the owner's own panels found in a served ``config``."""
    ids = {c.get("props", {}).get("elem_id") or "" for c in config["components"]}
    owner_ids = {
        i
        for i in ids
        if i.startswith(("models-", "settings-")) or (i.startswith("lan-") and i != "lan-banner")
    }
    tabs = {c.get("props", {}).get("label") for c in config["components"] if c.get("type") == "tabitem"} & {
        "Models",
        "Sharing",
        "Settings",
    }
    return owner_ids, tabs


def _owners_app_config() -> dict:
    """The config of the owner's full app, built here (not served) on a throw-away models folder."""
    from desktop.ui.app import build_app

    return build_app(open_door("cpu")).get_config_file()


# --- python app.py (a Space) ---------------------------------------------------------------


def test_space_app_py_serves_the_visitors_app_with_sign_in_and_says_where(hub, pipedesk_home):
    port = free_port()
    env = cli_env(
        pipedesk_home,
        hub,
        GRADIO_SERVER_NAME="0.0.0.0",
        GRADIO_SERVER_PORT=str(port),
        PIPEDESK_MODELS=f" {SST2} ,",
        PIPEDESK_AUTH="alice:correct-horse-battery",
        SPACE_HOST="someone-pipedesk.hf.space",
    )
    hub.requests.clear()
    served = Served([sys.executable, "app.py"], env)
    try:
        text = served.wait_ready()
        # The model named in $PIPEDESK_MODELS came from the Hub before the server answered.
        assert any(SST2 in path for _method, path in hub.requests), text
        assert re.search(r"sentiment: .*SST-2", text), text
        # The real addresses: every interface, never 127.0.0.1 for a server on 0.0.0.0.
        assert "127.0.0.1" not in text and "localhost" not in text, text
        assert f"all interfaces, port {port}" in text
        for address in sharing.lan_addresses():
            assert f"http://{address}:{port}/" in text
        assert "Space: https://someone-pipedesk.hf.space/" in text
        # The password is never printed.
        assert "correct-horse-battery" not in text and "Sign-in required" in text

        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{url}/config").status_code == 401
            wrong = {"username": "alice", "password": "not-the-password"}
            assert http.post(f"{url}/login", data=wrong).status_code == 400
            nobody = {"username": "mallory", "password": "correct-horse-battery"}
            assert http.post(f"{url}/login", data=nobody).status_code == 400
            right = {"username": "alice", "password": "correct-horse-battery"}
            assert http.post(f"{url}/login", data=right).status_code == 200
            owner_ids, tabs = _owner_only(_config(port, http))
            assert not owner_ids and not tabs

        from gradio_client import Client

        client = Client(f"{url}/", auth=("alice", "correct-horse-battery"), verbose=False)
        assert client.predict("I love this!", SST2, api_name="/sentiment")["label"] in {
            "POSITIVE",
            "NEGATIVE",
        }
    finally:
        rc = served.stop(signal.SIGTERM)  # how Spaces and containers stop a process
    assert rc == 0, served.text


# --- pipedesk serve --host 0.0.0.0 -----------------------------------------------------------


def test_serve_on_every_interface_has_none_of_the_owners_controls(hub, pipedesk_home, tiny_models):
    from gradio_client import Client

    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--host", "0.0.0.0", "--port", str(port)]
    hub.requests.clear()
    served = Served([*command, "--model", SST2], cli_env(pipedesk_home, hub))
    try:
        text = served.wait_ready()
        assert "127.0.0.1" not in text and "all interfaces" in text, text
        assert any(SST2 in path for _method, path in hub.requests), "downloaded at start-up"

        # No Models or Sharing tab, none of their components and none of their handlers.
        config = _config(port)
        owner_ids, tabs = _owner_only(config)
        assert not owner_ids and not tabs, (owner_ids, tabs)
        served_names = {d["api_name"] for d in config["dependencies"]}
        assert {"sentiment", "generate", "ner", "classify", "translate", "summarize"} <= served_names
        owners = _owners_app_config()
        owner_only = [d for d in owners["dependencies"] if d["api_name"] not in served_names]
        for name in served_names:
            assert not OWNER_WORDS.search(name), name
        # As the browser calls them (by number): download, import, move the folder, sharing, password.
        # (A number the visitors' app uses too runs that app's own handler, named above.)
        served_ids = {d["id"] for d in config["dependencies"]}
        attacks = [d for d in owner_only if d["id"] not in served_ids]
        owners_handlers = {"add_handler", "import_handler", "change_handler", "switch", "change_password"}
        assert owners_handlers | {"set_device", "set_offline", "set_fast"} <= {d["api_name"] for d in attacks}
        for dependency in attacks:
            body = {"data": [], "fn_index": dependency["id"], "session_hash": "attacker"}
            answer = httpx.post(f"http://127.0.0.1:{port}/gradio_api/queue/join", json=body, timeout=30)
            assert answer.status_code != 200 and "event_id" not in answer.text, dependency["api_name"]

        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        # The model named with --model answers.
        assert client.predict("I love this!", SST2, api_name="/sentiment")["label"] in {
            "POSITIVE",
            "NEGATIVE",
        }
        # A folder path is no model here (a real model folder, and one that is not there), and a model
        # that is not installed is not downloaded for a visitor.
        before = len(hub.requests)
        refused = "Only the models already installed|not in the list of choices"
        for typed in (str(tiny_models[SST2]), "/no/such/folder", "./models", STARS):
            with pytest.raises(Exception, match=refused) as caught:
                client.predict("Fine.", typed, api_name="/sentiment")
            assert "does not exist" not in str(caught.value) and "config.json" not in str(caught.value)
        assert not [path for _method, path in hub.requests[before:] if STARS in path]
    finally:
        assert served.stop() == 0


def test_procfile_web_line_serves_the_visitors_app_on_dollar_port(hub, pipedesk_home):
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    port = free_port()
    command = shlex.split(line.removeprefix("web:").strip().replace("$PORT", str(port)))
    assert command[:4] == ["python", "-m", "desktop", "serve"] and "0.0.0.0" in command
    command[0] = sys.executable
    served = Served(command, cli_env(pipedesk_home, hub, PORT=str(port), HF_HUB_OFFLINE="1"))
    try:
        text = served.wait_ready()
        assert "No model is installed" in text and "PIPEDESK_MODELS=" in text, text
        owner_ids, tabs = _owner_only(_config(port))
        assert not owner_ids and not tabs
    finally:
        assert served.stop() == 0


# --- the owner's app stays on loopback -----------------------------------------------------


@pytest.mark.timeout(120)
def test_the_full_app_never_listens_beyond_loopback(pipedesk_home):
    assert all(public.is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]"))
    assert not any(public.is_loopback(h) for h in ("0.0.0.0", "", "::", "192.168.1.20", "pipedesk.example"))
    with pytest.raises(UserError, match="listens only on this computer"):
        serve_command._serve("0.0.0.0", free_port(), "cpu", open_browser=False)


@pytest.mark.timeout(300)
def test_serve_refuses_what_a_public_server_cannot_do(pipedesk_home):
    env = cli_env(pipedesk_home, HF_HUB_OFFLINE="1")
    for args, words in (
        (["--host", "0.0.0.0", "--lan"], "--lan is for the app on this computer"),
        (["--host", "0.0.0.0", "--token"], "--token is for the app on this computer"),
        (["--host", "0.0.0.0", "--auth", "alice-no-colon-secret"], "USER:PASSWORD"),
        (["--host", "0.0.0.0", "--auth", "alice:short"], "at least 8 characters"),
        (["--host", "0.0.0.0", "--model", "/srv/models/mine"], "not a model Pipedesk can download"),
        (["--model", SST2], "--model is for a public server"),
    ):
        done = run_cli("serve", "--port", str(free_port()), *args, env=env, timeout=60)
        assert done.returncode == 2 and words in done.stderr, (args, done.stdout, done.stderr)
        assert "no-colon-secret" not in done.stderr + done.stdout


# --- the Space recipe --------------------------------------------------------------------


def _lock_pin(name: str) -> str:
    lock = (ROOT / "requirements-lock.txt").read_text(encoding="utf-8").splitlines()
    return next(line.split("==", 1)[1] for line in lock if line.startswith(f"{name}=="))


def test_the_space_readme_header_matches_the_app_and_the_lock():
    text = (ROOT / "build" / "space" / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["sdk"] == "gradio" and header["sdk_version"] == _lock_pin("gradio")
    assert (ROOT / header["app_file"]).is_file() and header["app_file"] == "app.py"
    assert header["python_version"] == "{}.{}".format(*sys.version_info[:2])  # what the lock was made on
    assert header["title"] and len(header.get("short_description", "")) <= 60


def test_requirements_install_the_cpu_torch_of_the_lock_on_a_space():
    lines = [x.strip() for x in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    space = {"sys_platform": "linux", "platform_machine": "x86_64"}
    torch = [Requirement(x) for x in lines if x.startswith("torch")]
    torch = [r for r in torch if r.marker is None or r.marker.evaluate(space)]
    assert [str(r.specifier) for r in torch] == [f"=={_lock_pin('torch')}+cpu"]
    gradio = next(Requirement(x) for x in lines if x.startswith("gradio"))
    assert gradio.specifier.contains(_lock_pin("gradio"))
    # Everything the package needs, but the desktop window (a Space has no display).
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dependencies = re.findall(r'"([^"]+)"', pyproject.split("\ndependencies = [", 1)[1].split("]\n", 1)[0])
    needed = {Requirement(x).name.lower() for x in dependencies} - {"pywebview"}
    listed = {Requirement(x).name.lower() for x in lines if x and not x.startswith(("#", "-"))}
    assert needed <= listed, needed - listed


def test_the_readme_tells_how_to_deploy():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Headless: a server or a Hugging Face Space", 1)[1].split("\n## ", 1)[0]
    for words in (
        "PIPEDESK_MODELS",
        "PIPEDESK_AUTH",
        "--auth",
        "build/space/README.md",
        "Procfile",
        "--public",
    ):
        assert words in section, words
    assert (ROOT / "build" / "space" / "README.md").is_file()
