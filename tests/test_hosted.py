"""A public server behind a load balancer: ``/healthz`` and the graceful drain on SIGTERM.

The real ``pipedesk serve --public`` process, the real Gradio server and ``gradio_client``; traffic
to 127.0.0.1 only. What a balancer (nginx, HAProxy, a platform's checks) relies on: 200 while the
replica can answer, 503 from the moment it is told to stop; new work refused in a sentence while
the requests already running finish and their answers still arrive; then a clean exit.
"""

from __future__ import annotations

import signal
import sys
import time

import httpx
import pytest

from desktop.server import health as healthz
from tests.support import cli_env, engine_pid, free_port, wait_until
from tests.test_deploy import SST2, Served

pytestmark = pytest.mark.slow
GPT2 = "openai-community/gpt2"


def test_healthz_is_ready_and_a_drain_lets_running_requests_finish(hub, pipedesk_home):
    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port)]
    command += ["--model", SST2, "--model", GPT2, "--drain-seconds", "120"]
    served = Served(command, cli_env(pipedesk_home, hub))
    url = f"http://127.0.0.1:{port}"
    try:
        served.wait_ready()
        with httpx.Client(timeout=30) as http:
            ready = http.get(f"{url}/healthz")
            assert ready.status_code == 200, ready.text
            report = ready.json()
            assert report["status"] == "ready" and report["models"] >= 2 and report["requests"] == 0
            # Any Host: a balancer's check names the replica's address, not the public name.
            assert http.get(f"{url}/healthz", headers={"Host": "10.1.2.3:8080"}).status_code == 200

        from gradio_client import Client

        client = Client(f"{url}/", verbose=False)
        # Enough long generations that some are still running or waiting when SIGTERM comes.
        jobs = [
            client.submit(f"Story {n}: once upon a time", GPT2, 1000, 0.0, 1.0, -1, api_name="/generate")
            for n in range(12)
        ]
        from gradio_client.utils import Status

        deadline = time.monotonic() + 60  # the client joins the queue on a thread of its own
        while any(job.status().code in (Status.STARTING, Status.JOINING_QUEUE) for job in jobs):
            assert time.monotonic() < deadline, "the generations were never all accepted"
            time.sleep(0.05)
        served.proc.send_signal(signal.SIGTERM)
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 10
            while (check := http.get(f"{url}/healthz")).status_code == 200:
                assert time.monotonic() < deadline, "still healthy after SIGTERM"
                time.sleep(0.05)
            assert check.status_code == 503 and check.json()["status"] == "draining"
            assert check.json()["requests"] > 0, "nothing was left running: the test proves nothing"
            refused = http.post(f"{url}/gradio_api/call/sentiment", json={"data": ["I love it", SST2]})
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert healthz.STOPPING in refused.json()["error"]["message"]
            assert http.get(f"{url}/").status_code == 503  # no new page either
        # Every request that was accepted before the signal still gets its answer.
        answers = [job.result(timeout=180) for job in jobs]
        assert all(isinstance(text, str) and text.startswith("Story") for text in answers), answers
        rc = served.proc.wait(timeout=60)
    finally:
        served.stop()
    assert rc == 0, served.text
    assert "Every running request finished." in served.text


def test_a_drain_that_runs_out_of_time_still_exits(hub, pipedesk_home):
    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port)]
    command += ["--model", GPT2, "--drain-seconds", "0"]
    served = Served(command, cli_env(pipedesk_home, hub))
    try:
        served.wait_ready()
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for n in range(6):
            client.submit(f"Story {n}", GPT2, 1000, 0.0, 1.0, -1, api_name="/generate")
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["requests"] == 0:
            assert time.monotonic() < deadline, "the generations never started"
            time.sleep(0.05)
        served.proc.send_signal(signal.SIGTERM)
        rc = served.proc.wait(timeout=60)
    finally:
        served.stop()
    assert rc == 0, served.text
    assert "Stopped after 0 s with requests running." in served.text


def test_a_replica_is_out_of_the_balancer_while_its_engine_starts_again(hub, pipedesk_home):
    """The engine process killed (out of memory, a native crash): ``/healthz`` says 503 and
    ``engine: restarting`` until the new engine is up, then 200 again, and the next request is
    answered; the server itself never went away."""
    import os

    from gradio_client import Client

    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port), "--model", SST2]
    served = Served(command, cli_env(pipedesk_home, hub))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        served.wait_ready()
        with httpx.Client(timeout=30) as http:
            wait_until(lambda: http.get(url).json()["engine"] == "running", timeout=120)
            os.kill(wait_until(lambda: engine_pid(served.proc.pid)), signal.SIGKILL)
            down = wait_until(lambda: (r := http.get(url)).status_code == 503 and r, timeout=30)
            assert down.json()["engine"] == "restarting" and down.json()["status"] == "ready"
            up = wait_until(lambda: (r := http.get(url)).status_code == 200 and r, timeout=120)
            assert up.json()["engine"] == "running"
        answer = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "I love this product!", SST2, api_name="/sentiment"
        )
        assert answer["label"] in ("POSITIVE", "NEGATIVE")
    finally:
        served.stop()


def test_drain_seconds_is_for_public_servers_and_in_range(pipedesk_home):
    from tests.support import run_cli

    env = cli_env(pipedesk_home)
    done = run_cli("serve", "--drain-seconds", "5", env=env)
    assert done.returncode == 2 and "--drain-seconds is for a public server" in done.stderr
    done = run_cli("serve", "--public", "--drain-seconds", "-1", env=env)
    assert done.returncode == 2 and "--drain-seconds must be between 0 and 3600." in done.stderr


def test_root_path_is_a_path_or_an_address():
    from desktop.cli.public import check_root_path
    from desktop.errors import UserError

    assert check_root_path("/pipedesk/") == "/pipedesk" and check_root_path("/a/b") == "/a/b"
    assert check_root_path("https://example.org/tools/pipedesk/") == "https://example.org/tools/pipedesk"
    assert check_root_path("") is None
    for bad in ("pipedesk", "/pipe desk", "javascript:alert(1)", "/a?b"):
        with pytest.raises(UserError, match="--root-path must be a path such as /pipedesk"):
            check_root_path(bad)


# --- behind nginx, under a path prefix ------------------------------------------------------------

NGINX_HTTP = """
    access_log {root}/access.log;
    client_max_body_size 200m;
    server {
        listen 127.0.0.1:PORT;
        location = /favicon.ico { return 204; }  # the site's own, outside Pipedesk's path
        location /pipedesk/ {
            proxy_pass http://127.0.0.1:UPSTREAM/;
            PASS_ON
        }
    }
"""


@pytest.fixture
def nginx(tmp_path):
    """Debian's nginx in front of a port the test names: ``start(upstream)`` returns its URL."""
    from tests.support.nginx import start_nginx, stop_nginx

    started = []

    def start(upstream: int) -> str:
        port = free_port()
        http = NGINX_HTTP.replace("PORT", str(port)).replace("UPSTREAM", str(upstream))
        started.append(start_nginx(tmp_path / "nginx", http, port))
        return f"http://127.0.0.1:{port}/pipedesk/"

    yield start
    for process in started:
        stop_nginx(process)


@pytest.fixture
def proxied(hub, pipedesk_home, nginx):
    """A public replica with ``--root-path /pipedesk`` behind nginx: the proxy's URL of it."""
    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port), "--model", SST2]
    served = Served([*command, "--root-path", "/pipedesk"], cli_env(pipedesk_home, hub))
    try:
        served.wait_ready()
        yield nginx(port)
    finally:
        served.stop()


def test_a_replica_behind_nginx_under_a_path_answers_scripts_and_its_health(proxied):
    assert httpx.get(proxied + "healthz", timeout=30).json()["status"] == "ready"
    from gradio_client import Client

    client = Client(proxied, verbose=False)
    assert client.predict("I love this!", SST2, api_name="/sentiment")["label"] in {"POSITIVE", "NEGATIVE"}
    assert httpx.get(proxied, timeout=30).status_code == 200


@pytest.mark.browser
def test_a_person_uses_the_app_through_nginx_under_a_path(proxied, browser):
    """The page, its scripts, its event stream and its answer all come through the proxy's path."""
    from tests.support import ARTIFACTS
    from tests.support.pages import new_page, run_sentiment

    context, page = new_page(browser)
    try:
        page.goto(proxied)
        run_sentiment(page, "I love this product!")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "behind-nginx.png"))
        assert page.url.startswith(proxied) and page.console_errors == []
    finally:
        context.close()
