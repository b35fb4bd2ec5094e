"""The gate in front of every server (desktop/server/gate.py), attacked as an outsider would.

Raw HTTP (httpx, sockets) against the real servers on 127.0.0.0/8: the app as the
window serves it (with its per-launch token), the app as ``pipedesk serve`` serves it
(no token), and the LAN sharing server. Nothing here leaves this machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from desktop import server
from desktop.engine.start import local_door
from desktop.server import gate
from desktop.share import controller as sharing
from tests.support import ROOT, cli_env, free_port

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
EVIL = "http://rebind.attacker.example"


def raw_get(port: int, path: str, headers: dict[str, str], host: str = "127.0.0.1") -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.get(f"http://{host}:{port}{path}", headers=headers)


def websocket_handshake(port: int, headers: dict[str, str]) -> int:
    """The HTTP status a websocket handshake to ``port`` gets (101: accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /gradio_api/queue/join HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        first = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(first.split()[1])


def stream_post(
    port: int,
    path: str,
    total: int,
    headers: dict[str, str] | None = None,
    declared: int | None = None,
    content_type: str = "application/json",
) -> tuple[int | None, int]:
    """POST a ``total``-byte body, 1 MiB at a time from a generator (chunked, or with Content-Length
    ``declared``), from 127.0.0.2, stopping as soon as the server answers or hangs up.

    Returns (the HTTP status or None when none came within 15 s, the body bytes sent).
    """
    block = b"7" * (1 << 20)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.2:{port}", f"Content-Type: {content_type}"]
    head.append("Transfer-Encoding: chunked" if declared is None else f"Content-Length: {declared}")
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sent = 0
    with socket.create_connection(("127.0.0.2", port), timeout=15, source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                piece = block[: min(len(block), total - sent)]
                frame = piece if declared is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
                sock.sendall(frame)
                sent += len(piece)
            if sent >= total and declared is None:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed while we were still sending
            pass
        try:
            first = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        except OSError:
            return None, sent
    return (int(first.split()[1]) if first.startswith("HTTP/") else None), sent


def multipart(files: int) -> tuple[bytes, str]:
    boundary = "pipedeskTestBoundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="f{n}.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello {n}\r\n"
        for n in range(files)
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def lan(runtime, app_server):
    """LAN sharing switched on, on a free port (per test: each test has its own settings and password)."""
    share = sharing.controller(local_door(runtime))
    share.requested_port = free_port()
    share.enable()
    yield share
    share.disable()


@contextlib.contextmanager
def signed_in_visitor(share) -> Iterator[httpx.Client]:
    """An HTTP client from 127.0.0.2, signed in to the LAN server with the password."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as http:
        login = http.post(
            f"http://127.0.0.2:{share.port}/login", data={"username": "v", "password": share.password}
        )
        assert login.status_code == 200
        yield http


@pytest.fixture(scope="module")
def window_server(runtime):
    """The app served as the window serves it: on 127.0.0.1 with a per-launch token."""
    from desktop.ui.app import build_app

    running = server.start(build_app(local_door(runtime)), token=server.new_token())
    yield running
    running.stop()


# --- DNS rebinding and other sites: every server ------------------------------------------


def test_a_page_that_rebinds_its_name_to_127_0_0_1_is_refused(app_server):
    port = app_server.port
    for host in ("rebind.attacker.example", f"rebind.attacker.example:{port}", f"127.0.0.1:{port + 1}", ""):
        answer = raw_get(port, "/config", {"Host": host})
        assert answer.status_code in (400, 403), host
        assert "password" not in answer.text and "components" not in answer.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert raw_get(port, "/config", {"Host": host}).status_code == 200, host


def test_requests_from_other_web_pages_are_refused(app_server):
    port = app_server.port
    call = f"http://127.0.0.1:{port}/gradio_api/call/sentiment"
    with httpx.Client(timeout=30) as http:
        for origin in (EVIL, "null", f"http://localhost:{port + 1}", "http://127.0.0.1"):
            answer = http.post(call, json={"data": ["I love it", SST2]}, headers={"Origin": origin})
            assert answer.status_code == 403, origin
            assert "other web pages" in answer.text
        same = http.post(
            call, json={"data": ["I love it", SST2]}, headers={"Origin": f"http://127.0.0.1:{port}"}
        )
        assert same.status_code == 200 and "event_id" in same.json()
    assert websocket_handshake(port, {"Host": f"127.0.0.1:{port}", "Origin": EVIL}) == 403


def test_the_lan_server_answers_only_this_computers_names(runtime, app_server):
    share = sharing.controller(local_door(runtime))
    share.requested_port = free_port()
    share.enable()
    try:
        port = share.port
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=30) as http:
            url = f"http://127.0.0.2:{port}/config"
            assert http.get(url, headers={"Host": f"rebind.attacker.example:{port}"}).status_code == 403
            assert http.get(url).status_code == 401  # an IP address: on to the sign-in
            assert http.get(url, headers={"Host": f"{socket.gethostname()}:{port}"}).status_code == 401
            login = f"http://127.0.0.2:{port}/login"
            form = {"username": "x", "password": share.password}
            assert http.post(login, data=form, headers={"Origin": EVIL}).status_code == 403
            assert (
                http.post(login, data=form, headers={"Origin": f"http://127.0.0.2:{port}"}).status_code == 200
            )
    finally:
        share.disable()


# --- the window's per-launch token ---------------------------------------------------------


def test_the_windows_server_answers_only_requests_with_its_token(window_server):
    port, token = window_server.port, window_server.token
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=30) as http:
        for path in ("/", "/config", "/gradio_api/info", f"/?{gate.TOKEN_PARAM}=wrong"):
            assert http.get(base + path).status_code == 401, path
        assert http.get(base + "/config", headers={gate.TOKEN_HEADER: "wrong"}).status_code == 401
        call = http.post(base + "/gradio_api/call/sentiment", json={"data": ["Great", SST2]})
        assert call.status_code == 401

        opened = http.get(window_server.open_url)  # what the window opens
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"{gate.cookie_name(port)}={token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http.get(base + "/").status_code == 200  # the cookie now goes with every request
        assert http.get(base + "/config").status_code == 200
        event = http.post(base + "/gradio_api/call/sentiment", json={"data": ["Great", SST2]}).json()[
            "event_id"
        ]
        with http.stream("GET", f"{base}/gradio_api/call/sentiment/{event}") as stream:
            text = "".join(stream.iter_text())
        assert "POSITIVE" in text or "NEGATIVE" in text
    with httpx.Client(timeout=30) as http:
        assert http.get(base + "/config", headers={gate.TOKEN_HEADER: token}).status_code == 200
    assert websocket_handshake(port, {"Host": f"127.0.0.1:{port}"}) == 403


@pytest.mark.browser
def test_the_window_url_opens_the_app_and_runs_a_task(browser, window_server, client):
    client.predict("warm up", SST2, api_name="/sentiment")  # the model installed, through the other app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(window_server.open_url)
        assert page.url == window_server.url  # the token left the address at once
        run = page.locator("#run-sentiment")
        run.wait_for(timeout=60_000)
        panel = run.locator("xpath=ancestor::div[contains(@class,'tabitem')]").first
        panel.get_by_label("Text").first.fill("I love this product!")
        run.click()  # the API call and its event stream carry the cookie
        page.wait_for_function(
            "() => document.querySelector(\"[data-testid='label-output-value']\")?.textContent.includes('POSITIVE')",
            timeout=60_000,
        )
        assert errors == []
    finally:
        context.close()
    stranger = browser.new_context()  # another browser profile: no cookie, no token
    try:
        page = stranger.new_page()
        answer = page.goto(window_server.url)
        assert answer.status == 401 and "answers only its own window" in page.content()
    finally:
        stranger.close()


# --- pipedesk serve: scripts as the README shows, and --token ------------------------------


def _serve(home, hub, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "serve", "--port", str(free_port()), *extra],
        env=cli_env(home, hub),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if ("X-Pipedesk-Token" if "--token" in extra else "running at") in line:
            break
    return proc, "".join(lines)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serve_with_token_answers_scripts_that_give_it(pipedesk_home, hub):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    proc, text = _serve(pipedesk_home, hub, "--token")
    try:
        url = re.search(r"running at (http://127\.0\.0\.1:\d+/)", text).group(1)
        token = re.search(r"X-Pipedesk-Token: (\S+)", text).group(1)
        with httpx.Client(timeout=30) as http:
            assert http.get(url + "config").status_code == 401
            assert http.get(url + "config", headers={gate.TOKEN_HEADER: token}).status_code == 200
        client = Client(url, headers={gate.TOKEN_HEADER: token}, verbose=False, download_files=False)
        assert client.predict("I love it", SST2, api_name="/sentiment")["label"] == "POSITIVE"
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
    finally:
        _stop(proc)


# --- huge bodies ----------------------------------------------------------------------------

MB = 1 << 20


def test_a_huge_body_without_the_password_is_refused_before_it_is_read(lan):
    for path in ("/gradio_api/call/sentiment", "/gradio_api/upload", "/login"):
        status, sent = stream_post(lan.port, path, 200 * MB)  # chunked: no Content-Length to trust
        assert status in (401, 413, 422), path  # refused (by the gate, or Gradio) before it was read
        assert sent < 32 * MB, f"{path}: {sent / MB:.0f} MB were taken before the refusal"
    status, sent = stream_post(lan.port, "/gradio_api/call/sentiment", 0, declared=700 * MB)
    assert status == 413  # declared too large: refused before any body byte was sent
    with signed_in_visitor(lan) as http:  # still fine: the sign-in itself and small requests
        answer = http.post(
            f"http://127.0.0.2:{lan.port}/gradio_api/call/sentiment", json={"data": ["Hi", SST2]}
        )
        assert answer.status_code == 200


def test_signed_in_bodies_are_capped_at_the_upload_limit_too(lan):
    with signed_in_visitor(lan) as http:
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    status, sent = stream_post(lan.port, "/gradio_api/call/sentiment", 120 * MB, headers={"Cookie": cookie})
    assert status == 413 and sent < 100 * MB


def test_local_app_bodies_are_capped_at_the_upload_limit(app_server):
    def chunks(megabytes: int):
        for _ in range(megabytes):
            yield b" " * MB

    with httpx.Client(timeout=60) as http:
        boundary = "pipedeskTestBoundary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
        answer = http.post(
            f"{app_server.url}gradio_api/upload",
            content=iter([head.encode(), *chunks(80)]),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 413  # Gradio's own words (the 50 MB file) or the gate's (51 MB body)


# --- data, not files: a few MB of JSON, a few thousand objects --------------------------------


def task_request(text_or_value, model: str = "") -> bytes:
    return json.dumps({"data": [text_or_value, model]}).encode()


@pytest.mark.parametrize("where", ["window", "lan"])
def test_requests_without_files_are_capped_at_a_few_megabytes(where, request):
    """46 MB of empty JSON objects cost 3 GB to parse: every server refuses a JSON body past
    4 MB (however it is sent) and one of more than 10,000 objects and lists, before parsing it."""
    with contextlib.ExitStack() as stack:
        if where == "window":
            running = request.getfixturevalue("window_server")
            http = stack.enter_context(httpx.Client(timeout=60, headers={gate.TOKEN_HEADER: running.token}))
            url = running.url
        else:
            share = request.getfixturevalue("lan")
            http = stack.enter_context(signed_in_visitor(share))
            url = f"http://127.0.0.2:{share.port}/"
        call = url + "gradio_api/call/sentiment"
        json_type = {"Content-Type": "application/json"}
        fits = http.post(call, content=task_request("A " + "long review. " * 200_000), headers=json_type)
        assert fits.status_code == 200  # 2.6 MB: a long text still reaches the task (and its limit)
        huge = http.post(call, content=task_request("x" * (5 * MB)), headers=json_type)
        assert huge.status_code == 413 and "at most 4 MB in a request without files" in huge.text
        streamed = http.post(call, content=iter([b'{"data": ["', b"y" * MB] * 6), headers=json_type)
        assert streamed.status_code == 413  # no Content-Length to trust: counted as it comes
        empties = http.post(call, content=json.dumps({"data": [[{}] * 20_000, ""]}), headers=json_type)
        assert empties.status_code == 413 and "at most 10,000 objects and lists" in empties.text
        braces = http.post(
            call, content=task_request("{[" * 20_000 + " a text full of brackets"), headers=json_type
        )
        assert braces.status_code == 200  # brackets inside a text are characters, not objects
        assert http.post(call, content=task_request("I love it"), headers=json_type).status_code == 200


def test_a_refused_request_leaves_a_short_trace_in_the_console(app_server, capfd):
    """Gradio quoted every input of a malformed request in its error: 2 MB sent, 2 MB printed."""
    capfd.readouterr()
    with httpx.Client(timeout=60) as http:
        answer = http.post(f"{app_server.url}gradio_api/run/sentiment", json={"data": ["y" * (2 * MB)]})
    out, err = capfd.readouterr()
    assert answer.status_code == 500 and len(answer.content) < 2000
    assert "gave 1 input values; sentiment takes 3" in answer.text
    assert len(out) + len(err) < 20_000, f"{len(out) + len(err):,} characters printed"


def test_one_request_carries_at_most_ten_files_as_the_refusal_says(lan):
    with signed_in_visitor(lan) as http:
        url = f"http://127.0.0.2:{lan.port}/gradio_api/upload"
        for count in (11, 14, 30):
            body, content_type = multipart(count)
            many = http.post(url, content=body, headers={"Content-Type": content_type})
            assert many.status_code == 413 and "Too many files in one request: at most 10." in many.text
        body, content_type = multipart(10)
        ten = http.post(url, content=body, headers={"Content-Type": content_type})
        assert ten.status_code == 200 and len(ten.json()) == 10


# --- making this computer fetch other addresses (SSRF) -------------------------------------

FETCHER = """
import http.server, json, sys, threading
import gradio as gr
import httpx
from desktop import server

hits = []

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        body = b"SSRF-SECRET"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

public = http.server.ThreadingHTTPServer(("1.2.3.4", 8000), Handler)
threading.Thread(target=public.serve_forever, daemon=True).start()
with gr.Blocks() as blocks:
    given, said = gr.File(), gr.Textbox()
    gr.Button().click(lambda f: "got " + str(f), inputs=given, outputs=said, api_name="take")
running = server.start(blocks)
base = running.url
found = {}
answer = httpx.get(base + "gradio_api/file=http://1.2.3.4:8000/secret.txt", timeout=30)
found["file_route"] = [answer.status_code, "SSRF-SECRET" in answer.text]
data = [{"path": "http://1.2.3.4:8000/input.txt", "meta": {"_type": "gradio.FileData"}}]
event = httpx.post(base + "gradio_api/call/take", json={"data": data}, timeout=30).json()["event_id"]
found["file_input"] = httpx.get(base + "gradio_api/call/take/" + event, timeout=30).text
found["hits"] = hits
running.stop()
print("RESULT " + json.dumps(found))
"""


@pytest.fixture
def public_namespace():
    """A network namespace of its own where 1.2.3.4, a public address, is local: what a server
    there fetches from "the internet" stays inside the namespace."""
    import shutil

    from tests.support import need

    need(shutil.which("ip") is not None, "iproute2 (ip) is not installed")
    name = f"pdssrf{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    need(made.returncode == 0, f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        for step in (["link", "set", "lo", "up"], ["addr", "add", "1.2.3.4/32", "dev", "lo"]):
            done = subprocess.run(["ip", "-n", name, *step], capture_output=True, text=True)
            need(done.returncode == 0, f"ip {' '.join(step)}: {done.stderr.strip()}")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_nobody_can_make_pipedesk_fetch_another_address(public_namespace, pipedesk_home):
    import json

    done = subprocess.run(
        ["ip", "netns", "exec", public_namespace, sys.executable, "-c", FETCHER],
        env=cli_env(pipedesk_home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, done.stdout + done.stderr
    found = json.loads(line[0][len("RESULT ") :])
    assert found["file_route"] == [403, False]
    assert "event: error" in found["file_input"] and "SSRF-SECRET" not in found["file_input"]
    assert found["hits"] == []
