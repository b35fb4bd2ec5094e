"""Who gets through the Local API's door: the window's server with its key, ``pipedesk serve`` on
loopback (no key; ``--token`` makes it need one), and LAN visitors (the sharing password as their key,
their limits unchanged), with the real ``openai`` and ``mcp`` clients.

Visitors send from 127.0.0.2 (a bound source address), so the server sees another device
(tests/test_sharing.py does the same; NOTES.md says why a namespace is not needed for that).
"""

from __future__ import annotations

import base64
import select
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from desktop import server
from desktop.api import keys
from desktop.engine.start import local_door
from desktop.share import controller as sharing
from desktop.share import gate as visitors_gate
from desktop.tasks import TASKS
from tests.support import free_port
from tests.support.api_clients import Serve, mcp, openai_client, tool_call
from tests.support.tiny_chat import HELLO, HELLO_ANSWER
from tests.support.tiny_media import tone, wav_bytes, write_wav

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
VISITOR = "127.0.0.2"


def hello(api) -> str:
    answer = api.chat.completions.create(
        model=QWEN, messages=[{"role": "user", "content": HELLO}], temperature=0
    )
    return answer.choices[0].message.content


async def tool_names(client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


# --- the window's server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def window_server(runtime):
    """The app served as the window serves it: on 127.0.0.1 with a per-launch token."""
    from desktop.ui.app import build_app

    running = server.start(build_app(local_door(runtime)), token=server.new_token())
    yield running
    running.stop()


def test_the_windows_server_answers_programs_that_send_the_local_apis_key(window_server, hub):
    key = keys.turn_on(window_server.port)
    assert hello(openai_client(window_server.url, key)) == HELLO_ANSWER
    assert "sentiment" in mcp(window_server.url, tool_names, key=key)
    with httpx.Client(timeout=30) as http:
        # The window's own token opens the page, not the API: programs need the key.
        token = {"X-Pipedesk-Token": window_server.token}
        assert http.get(window_server.url + "config", headers=token).status_code == 200
        assert http.get(window_server.url + "v1/models", headers=token).status_code == 401
        # The key opens the API, not the page.
        assert (
            http.get(window_server.url + "config", headers={"Authorization": f"Bearer {key}"}).status_code
            == 401
        )
    keys.turn_off()
    with pytest.raises(openai.PermissionDeniedError, match="The Local API is off"):
        hello(openai_client(window_server.url, key))


# --- pipedesk serve --------------------------------------------------------------------------------


def test_pipedesk_serve_needs_no_key_on_loopback(pipedesk_home, hub):
    served = Serve(pipedesk_home, hub)
    try:
        assert "Local API: " + served.url + "v1" in served.text
        api = openai_client(served.url)  # no key at all
        assert hello(api) == HELLO_ANSWER
        streamed = api.chat.completions.create(
            model=QWEN, messages=[{"role": "user", "content": HELLO}], temperature=0, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == HELLO_ANSWER
        assert tool_call(served.url, "sentiment", {"text": "I love this product!"}).structured_content[
            "label"
        ] == ("POSITIVE")
        audio = base64.b64encode(wav_bytes(tone(2.0))).decode()
        assert tool_call(served.url, "transcribe", {"audio": audio}).structured_content["text"] == "a tone"
        foreign = httpx.get(served.url + "v1/models", headers={"Origin": "http://evil.example"}, timeout=30)
        assert foreign.status_code == 403
    finally:
        assert served.stop() == 0


def test_pipedesk_serve_with_token_answers_only_programs_that_send_it(pipedesk_home, hub):
    served = Serve(pipedesk_home, hub, "--token")
    try:
        assert served.token
        with pytest.raises(openai.AuthenticationError, match="Wrong API key"):
            hello(openai_client(served.url, "a-guess"))
        assert httpx.get(served.url + "v1/models", timeout=30).status_code == 401  # no key at all
        assert hello(openai_client(served.url, served.token)) == HELLO_ANSWER
        assert "chat" in mcp(served.url, tool_names, key=served.token)
    finally:
        served.stop()


def test_a_public_server_takes_the_sign_in_password_as_the_key(pipedesk_home, hub):
    served = Serve(pipedesk_home, hub, "--public", "--auth", "guest:correct-horse", "--model", QWEN)
    try:
        assert "programs send the --auth password as their key" in served.text
        assert hello(openai_client(served.url, "correct-horse")) == HELLO_ANSWER
        with pytest.raises(openai.AuthenticationError, match="Wrong API key"):
            hello(openai_client(served.url, "guest:correct-horse"))
        assert httpx.get(served.url + "v1/models", timeout=30).status_code == 401
    finally:
        served.stop()


# --- LAN visitors ----------------------------------------------------------------------------------


@pytest.fixture
def lan(runtime, app_server, hub):
    """LAN sharing on, on a free port, with the Local API switched on (this test's own settings)."""
    keys.turn_on(None)
    for task in ("chat", "transcribe"):  # installed by the owner: visitors can use nothing else
        runtime.store.ensure(TASKS[task].default_model)
    share = sharing.controller(local_door(runtime))
    share.requested_port = free_port()
    share.enable()
    yield share
    share.disable()


def visitor_api(share, key: str | None = None):
    return openai_client(f"http://{VISITOR}:{share.port}/", key or share.password, source=VISITOR)


def test_a_visitor_uses_the_api_with_the_sharing_password_and_visitors_limits(lan, tmp_path):
    api = visitor_api(lan)
    assert hello(api) == HELLO_ANSWER
    installed = {model.id for model in api.models.list().data}
    assert QWEN in installed
    with pytest.raises(openai.BadRequestError, match="Only the models already installed"):
        api.chat.completions.create(
            model="someone/not-installed", messages=[{"role": "user", "content": HELLO}]
        )
    recording = write_wav(tmp_path / "visitor.wav", tone(2.0))
    folder = sharing.visitors_upload_folder()
    with recording.open("rb") as file:
        assert api.audio.transcriptions.create(model="", file=file, response_format="text") == "a tone\n"
    assert not [p for p in folder.rglob("*") if p.is_file()], "the visitor's upload was kept"
    visitor = next(v for v in lan.gate.visitors() if v.address == VISITOR)
    assert visitor.signed_in and visitor.uploaded >= recording.stat().st_size  # counted in their quota
    # A visitor never names a path on this computer; the file's bytes are fine.
    named = tool_call(
        f"http://{VISITOR}:{lan.port}/",
        "transcribe",
        {"audio": str(recording)},
        key=lan.password,
        source=VISITOR,
    )
    assert named.is_error and "a path names a file on the computer running Pipedesk" in named.content[0].text
    sent = tool_call(
        f"http://{VISITOR}:{lan.port}/",
        "transcribe",
        {"audio": base64.b64encode(recording.read_bytes()).decode()},
        key=lan.password,
        source=VISITOR,
    )
    assert sent.structured_content["text"] == "a tone"


def test_a_visitors_uploads_to_the_api_stop_at_their_quota(lan, tmp_path):
    recording = write_wav(tmp_path / "long.wav", tone(20.0))  # 640 KB
    lan.gate.upload_quota = 1024 * 1024
    api = visitor_api(lan)
    with recording.open("rb") as file:
        assert api.audio.transcriptions.create(model="", file=file).text
    quota = "that is the most one device can send"
    with pytest.raises(openai.APIStatusError, match=quota) as refused, recording.open("rb") as file:
        api.audio.transcriptions.create(model="", file=file)
    assert refused.value.status_code == 413


def test_wrong_keys_are_counted_as_wrong_passwords(lan):
    for _ in range(visitors_gate.MAX_FAILURES):
        with pytest.raises(openai.AuthenticationError, match="Wrong API key"):
            visitor_api(lan, "not-the-password").models.list()
    with pytest.raises(openai.RateLimitError, match="Too many wrong passwords"):
        visitor_api(lan).models.list()  # even the right one, from that address, for a while
    assert hello(openai_client(f"http://127.0.0.1:{lan.port}/", lan.password)) == HELLO_ANSWER  # others: fine


def test_the_lan_api_follows_the_local_api_switch_and_the_gate(lan):
    with httpx.Client(transport=httpx.HTTPTransport(local_address=VISITOR), timeout=30) as http:
        url = f"http://{VISITOR}:{lan.port}/v1/models"
        assert http.get(url).status_code == 401  # no key
        foreign = {"Authorization": f"Bearer {lan.password}", "Origin": "http://evil.example"}
        assert http.get(url, headers=foreign).status_code == 403
    keys.turn_off()
    with pytest.raises(openai.PermissionDeniedError, match="The Local API is off"):
        visitor_api(lan).models.list()


def test_a_huge_api_body_without_the_key_is_refused_before_it_is_read(lan):
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: {VISITOR}:{lan.port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    block, sent = b"7" * (1 << 20), 0
    with socket.create_connection((VISITOR, lan.port), timeout=15, source_address=(VISITOR, 0)) as sock:
        sock.sendall(head)
        try:
            while sent < 200 << 20 and not select.select([sock], [], [], 0)[0]:  # until it answers
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
        except OSError:  # answered and closed while we were still sending
            pass
        first = sock.recv(4096).split(b"\r\n", 1)[0]
    assert first.startswith(b"HTTP/1.1 401") and sent < 32 << 20


def test_sharing_without_the_switch_serves_no_api_to_visitors(runtime, app_server):
    share = sharing.controller(local_door(runtime))
    share.requested_port = free_port()
    share.enable()
    try:
        with pytest.raises(openai.PermissionDeniedError, match="The Local API is off"):
            visitor_api(share).models.list()
    finally:
        share.disable()
    assert not Path(sharing.visitors_upload_folder()).exists()


# --- a device on another host, in a network namespace -------------------------------------------

FROM_ANOTHER_HOST = """
import sys, openai
from openai import OpenAI
url, key, wrong, message = sys.argv[1:5]
try:
    OpenAI(base_url=url, api_key=wrong, max_retries=0).models.list()
    print("wrong key: answered")
except openai.AuthenticationError:
    print("wrong key: refused")
api = OpenAI(base_url=url, api_key=key, max_retries=0)
print(api.chat.completions.create(
    model=sys.argv[5], messages=[{"role": "user", "content": message}], temperature=0
).choices[0].message.content)
"""


def test_a_device_on_another_host_uses_the_api_with_the_sharing_password(lan_namespace, lan):
    """The real ``openai`` client on a second host (a network namespace joined by a veth pair): the
    sharing password is its key, a wrong one is refused, and the app's own port is not reachable."""
    ns, here, _there = lan_namespace
    assert f"http://{here}:{lan.port}/" in lan.urls()
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", FROM_ANOTHER_HOST,
         f"http://{here}:{lan.port}/v1", lan.password, "not-the-password", HELLO, QWEN],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["wrong key: refused", HELLO_ANSWER]
