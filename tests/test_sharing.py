"""LAN sharing: off by default, password-protected when on, really off when switched off.

All traffic goes to 127.0.0.0/8 (a client reaching 127.0.0.2 stands in for another
device: a server bound to 127.0.0.1 only refuses it) or into a network namespace
the test creates itself; never to this machine's own LAN address. Requests are
sent *from* 127.0.0.2 (a bound source address) so the server sees a visitor that
is not 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from desktop import paths
from desktop.engine.start import local_door
from desktop.errors import UserError
from desktop.share import controller as sharing
from desktop.tasks import TASKS
from tests.support import ROOT, cli_env, free_port

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
VISITOR = "127.0.0.2"


def refused(host: str, port: int) -> bool:
    """True when nothing accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True


def visitor_http() -> httpx.Client:
    """An HTTP client whose requests come from 127.0.0.2, like a device that is not this one."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=VISITOR), timeout=30)


def sign_in(port: int, password: str) -> httpx.Response:
    with visitor_http() as http:
        return sign_in_with(http, port, password)


def sign_in_with(http: httpx.Client, port: int, password: str) -> httpx.Response:
    return http.post(f"http://{VISITOR}:{port}/login", data={"username": "guest", "password": password})


@pytest.fixture
def share(runtime, app_server):
    """The app's Sharing controller on a free port; switched off again afterwards."""
    controller = sharing.controller(local_door(runtime))
    controller.requested_port = free_port()
    yield controller
    controller.disable()


# --- pure parts ---------------------------------------------------------------------------


def test_generated_passwords_are_four_words_easy_to_read_out():
    made = {sharing.generate_password() for _ in range(50)}
    assert len(made) == 50
    for password in made:
        words = password.split("-")
        assert len(words) == 4 and all(word in sharing.WORDS for word in words)
    assert len(set(sharing.WORDS)) == len(sharing.WORDS) >= 256  # 4 words: at least 32 bits


def test_a_chosen_password_must_be_long_enough():
    with pytest.raises(UserError, match="at least 8 characters"):
        sharing.check_password("short")
    assert sharing.check_password("  long enough  ") == "long enough"


def test_addresses_leave_out_loopback():
    addresses = sharing.lan_addresses()
    assert all(not a.startswith("127.") and a.count(".") == 3 for a in addresses)


# --- on, off, and what a visitor gets ------------------------------------------------------


def test_sharing_is_off_by_default_and_nothing_listens_beyond_loopback(share, app_server):
    assert not share.active and share.urls() == []
    assert refused(VISITOR, app_server.port)
    assert refused(VISITOR, share.requested_port)


def test_sharing_on_asks_for_the_password_and_off_closes_the_port(share, app_server, client, hub, caplog):
    from gradio_client import Client

    caplog.set_level(logging.INFO, logger="desktop")
    client.predict("warm up", SST2, api_name="/sentiment")  # installed through the local app
    share.enable()
    port = share.port
    assert port == share.requested_port and share.active
    assert refused(VISITOR, app_server.port), "the local app itself stays on 127.0.0.1"

    with visitor_http() as http:
        assert http.get(f"http://{VISITOR}:{port}/config").status_code == 401
        assert http.get(f"http://{VISITOR}:{port}/").status_code == 200  # the sign-in page
    assert sign_in(port, "not-the-password").status_code == 400
    assert sign_in(port, share.password).status_code == 200
    visitor = [v for v in share.gate.visitors() if v.address == VISITOR][0]
    assert visitor.signed_in and visitor.failures == 0
    assert f"LAN visitor connected from {VISITOR}" in caplog.text
    assert f"Wrong LAN password from {VISITOR}" in caplog.text

    remote = Client(f"http://{VISITOR}:{port}/", auth=("guest", share.password), verbose=False)
    out = remote.predict("I love this product!", SST2, api_name="/sentiment")
    assert out["label"] == "POSITIVE"

    # Visitors get the tasks and nothing else: no model management, settings or sharing.
    local_api = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    shared_api = set(remote.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {f"/{task}" for task in TASKS} <= shared_api <= local_api
    for name in shared_api:
        assert not re.search(r"model|download|delete|import|setting|shar|password", name[1:]), name
    for name in local_api - shared_api:
        with pytest.raises(ValueError):
            remote.predict(api_name=name)

    # Only models already installed here; nothing is downloaded for a visitor, no folder is opened.
    hub.add_repo("pipedesk-test/not-installed", share.door.store.local_path(TASKS["sentiment"].default_model))
    try:
        before = len(hub.requests)
        for typed in ("pipedesk-test/not-installed", "/etc", str(paths.config_dir()), "./no/such/folder"):
            # Refused by the visitors' model list itself, or by the runtime behind it.
            with pytest.raises(
                Exception, match="Only the models already installed|not in the list of choices"
            ):
                remote.predict("Fine.", typed, api_name="/sentiment")
        assert not [r for r in hub.requests[before:] if "pipedesk-test" in r[1]]
    finally:
        hub.remove_repo("pipedesk-test/not-installed")

    # Nothing outside Gradio's cache is served; the monitoring dashboard is off.
    with visitor_http() as http:
        assert (
            http.post(
                f"http://{VISITOR}:{port}/login", data={"username": "g", "password": share.password}
            ).status_code
            == 200
        )
        settings_file = paths.config_dir() / "settings.json"
        assert settings_file.exists()
        assert http.get(f"http://{VISITOR}:{port}/gradio_api/file={settings_file}").status_code == 403
        assert http.get(f"http://{VISITOR}:{port}/gradio_api/file=/etc/hostname").status_code == 403
        assert http.get(f"http://{VISITOR}:{port}/monitoring").status_code != 200

    # A new password signs visitors out and replaces the old one.
    old = share.password
    new = share.set_password("correct horse battery")
    assert share.active and share.port == port
    assert sign_in(port, old).status_code == 400
    assert sign_in(port, new).status_code == 200

    share.disable()
    assert refused(VISITOR, port)
    assert not share.active and share.urls() == []
    assert client.predict("Still here?", SST2, api_name="/sentiment")["label"] in {"POSITIVE", "NEGATIVE"}


def test_too_many_wrong_passwords_lock_an_address_out(share):
    from desktop.share.gate import MAX_FAILURES

    share.enable()
    codes = [sign_in(share.port, f"guess-{n}").status_code for n in range(MAX_FAILURES)]
    assert codes == [400] * MAX_FAILURES
    locked = sign_in(share.port, share.password)
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text


def test_many_wrong_passwords_at_once_are_not_all_checked(share):
    """60 sign-ins sent together from one address: at most MAX_FAILURES passwords are checked."""
    import asyncio

    from desktop.share.gate import MAX_FAILURES

    share.enable()
    url = f"http://{VISITOR}:{share.port}/login"

    async def attack() -> list[int]:
        transport = httpx.AsyncHTTPTransport(local_address=VISITOR)
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=60) as http:
            answers = await asyncio.gather(
                *(http.post(url, data={"username": "x", "password": f"guess-{n}"}) for n in range(60))
            )
        return [answer.status_code for answer in answers]

    codes: list[int] = []  # on a thread of its own: Playwright may be running a loop on this one
    worker = threading.Thread(target=lambda: codes.extend(asyncio.run(attack())))
    worker.start()
    worker.join(timeout=120)
    assert set(codes) <= {400, 429}
    assert codes.count(400) <= MAX_FAILURES, f"{codes.count(400)} wrong passwords were checked"


def _upload(http: httpx.Client, port: int, files: int, size: int) -> httpx.Response:
    sent = [("files", (f"f{n}.bin", b"x" * size, "application/octet-stream")) for n in range(files)]
    return http.post(f"http://{VISITOR}:{port}/gradio_api/upload", files=sent)


def test_visitors_files_stay_apart_and_are_removed_when_sharing_stops(share, app_server, client, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    picture = tmp_path / "blue.png"
    Image.new("RGB", (40, 40), (20, 40, 220)).save(picture)
    client.predict("Image", "", handle_file(str(picture)), "auto", api_name="/classify")  # installs the model
    with httpx.Client(timeout=30) as http:  # a file the owner uploaded in the own window
        owners = http.post(
            f"{app_server.url}gradio_api/upload",
            files=[("files", ("mine.png", picture.read_bytes(), "image/png"))],
        ).json()
    share.enable()
    remote = Client(f"http://{VISITOR}:{share.port}/", auth=("guest", share.password), verbose=False)
    out = remote.predict("Image", "", handle_file(str(picture)), "auto", api_name="/classify")
    assert len(out["confidences"]) == 5  # a visitor's uploaded image is a usable task input
    with visitor_http() as http:
        assert sign_in_with(http, share.port, share.password).status_code == 200
        uploaded = _upload(http, share.port, 2, 1000).json()
        assert len(uploaded) == 2 and all(os.path.exists(path) for path in uploaded)
        for path in owners:  # the owner's own files are not a visitor's to read
            assert os.path.exists(path)
            assert http.get(f"http://{VISITOR}:{share.port}/gradio_api/file={path}").status_code == 403
    share.disable()
    assert not any(os.path.exists(path) for path in uploaded)
    assert all(os.path.exists(path) for path in owners)


def test_a_visitor_can_send_only_so_many_bytes_of_files(share):
    share.enable()
    share.gate.upload_quota = 3 * 1024 * 1024  # the real quota is larger; the rule is the same
    with visitor_http() as http:
        assert sign_in_with(http, share.port, share.password).status_code == 200
        assert [_upload(http, share.port, 1, 1024 * 1024).status_code for _ in range(2)] == [200, 200]
        declared = _upload(http, share.port, 1, 2 * 1024 * 1024)
        assert declared.status_code == 413 and "MB of files already" in declared.text
        boundary = "b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n'.encode()
            + b"x" * (2 * 1024 * 1024)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        streamed = http.post(  # chunked: no Content-Length to go by, counted as it arrives
            f"http://{VISITOR}:{share.port}/gradio_api/upload",
            content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert streamed.status_code == 413 and "MB of files already" in streamed.text
        assert _upload(http, share.port, 1, 10).status_code == 413  # the streamed bytes counted too


def multipart_sign_in(http: httpx.Client, port: int, password: str) -> httpx.Response:
    """A sign-in as Gradio's own sign-in page sends it: a multipart form."""
    form = {"username": (None, "guest"), "password": (None, password)}
    return http.post(f"http://{VISITOR}:{port}/login", files=form)


def test_wrong_passwords_sent_as_the_sign_in_page_sends_them_lock_an_address_out_too(share):
    from desktop.share.gate import MAX_FAILURES

    share.enable()
    with visitor_http() as http:
        assert multipart_sign_in(http, share.port, share.password).status_code == 200
    assert [v.signed_in for v in share.gate.visitors() if v.address == VISITOR] == [
        True
    ]  # the Sharing tab's list
    with visitor_http() as http:
        codes = [multipart_sign_in(http, share.port, f"guess-{n}").status_code for n in range(MAX_FAILURES)]
        assert codes == [400] * MAX_FAILURES
        locked = multipart_sign_in(http, share.port, share.password)
        assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
        assert sign_in_with(http, share.port, share.password).status_code == 429  # however it is sent


def test_a_sign_in_left_half_sent_holds_up_no_other_sign_in(share):
    share.enable()
    body = b"username=guest&password=" + share.password.encode()
    with socket.create_connection((VISITOR, share.port), timeout=10, source_address=(VISITOR, 0)) as stuck:
        head = (
            f"POST /login HTTP/1.1\r\nHost: {VISITOR}:{share.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body) + 50}\r\n\r\n"
        )
        stuck.sendall(head.encode() + body)  # 50 bytes short: the server waits for the rest
        time.sleep(0.5)
        started = time.monotonic()
        assert sign_in(share.port, share.password).status_code == 200  # the same address, at once
        assert time.monotonic() - started < 10
        assert sign_in(share.port, "a-wrong-guess").status_code == 400  # still checked one by one


def test_a_visitor_can_use_only_the_files_it_uploaded_itself(share, app_server, tmp_path):
    from tests.support import raw_gradio

    table = tmp_path / "owners-secrets.csv"
    table.write_text("name,salary\nAda,100000\nGrace,120000\n", encoding="utf-8")
    with httpx.Client(timeout=30) as http:  # the owner uploads a file in the window
        (owners,) = raw_gradio.upload(http, app_server.url, table)
    share.enable()
    base = f"http://{VISITOR}:{share.port}/"
    with visitor_http() as visitor, visitor_http() as other:
        for http in (visitor, other):
            assert sign_in_with(http, share.port, share.password).status_code == 200
        batch_upload = raw_gradio.event_index(visitor, base, "batch-file", "upload")
        # The owner's file, sent by its path to the Batch tab's upload handler, is not read.
        status, said = raw_gradio.queue_call(visitor, base, batch_upload, [[raw_gradio.file_data(owners)]])
        assert status == 403 and "Only files you uploaded yourself" in said and "Ada" not in said
        # The visitor's own upload is read; another visitor cannot use it.
        mine = tmp_path / "mine.csv"
        mine.write_text("text\nGreat service!\n", encoding="utf-8")
        (path,) = raw_gradio.upload(visitor, base, mine)
        status, shown = raw_gradio.queue_call(visitor, base, batch_upload, [[raw_gradio.file_data(path)]])
        assert status == 200 and "1 rows" in json.dumps(shown)
        status, said = raw_gradio.queue_call(other, base, batch_upload, [[raw_gradio.file_data(path)]])
        assert status == 403 and "Only files you uploaded yourself" in said


def test_visitors_transcripts_go_with_their_files_and_their_status_line_shows_only_their_runs(
    share, app_server, client, runtime, tmp_path
):
    import shutil

    from gradio.utils import get_upload_folder
    from gradio_client import Client, handle_file

    from desktop.ui.handlers import status_text
    from tests.support.tiny_media import tone, write_wav

    recording = write_wav(tmp_path / "visitor-memo.wav", tone(2.0))
    client.predict(handle_file(str(recording)), "", "auto", False, api_name="/transcribe")  # installs Whisper
    client.predict("The owner's own review.", SST2, api_name="/sentiment")
    owners_status = runtime.status.line()
    assert runtime.status.model and runtime.status.model in owners_status
    transcripts = Path(get_upload_folder()) / "pipedesk-transcripts"
    shutil.rmtree(transcripts, ignore_errors=True)  # what the owner's own runs wrote: none now
    share.enable()
    remote = Client(f"http://{VISITOR}:{share.port}/", auth=("guest", share.password), verbose=False)
    text, _segments, files = remote.predict(
        handle_file(str(recording)), "", "auto", False, api_name="/transcribe"
    )
    assert text == "a tone"  # and the visitor got the downloads
    assert sorted(Path(f).suffix for f in files) == [".json", ".srt", ".txt", ".vtt"]
    # The visitors' page never shows what the owner ran; after their own run, their model and time.
    with visitor_http() as http:
        assert sign_in_with(http, share.port, share.password).status_code == 200
        config = http.get(f"http://{VISITOR}:{share.port}/config").json()
    (line,) = [
        c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "status-line"
    ]
    assert runtime.status.model not in line and "last run" not in line
    mine = status_text(local_door(runtime).visitors(), "Whisper (visitor)", 1234)
    assert "Whisper (visitor)" in mine and "1,234 ms" in mine and runtime.status.model not in mine
    share.disable()
    left = [p for p in transcripts.rglob("*") if p.is_file()] if transcripts.exists() else []
    assert not left, f"a visitor's transcript stayed after sharing stopped: {left}"


def test_visitors_files_left_by_a_process_that_is_gone_are_removed_at_start(runtime, tmp_path):
    from gradio.utils import get_upload_folder

    leftover = Path(get_upload_folder()) / "visitors" / "999999999"
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / "big.bin").write_bytes(b"x" * 1000)
    sharing.Sharing(runtime)
    assert not leftover.exists()


def test_refusals_tell_visitors_nothing_about_this_computers_folders(share, client):
    from gradio_client import Client

    client.predict("warm up", SST2, api_name="/sentiment")
    share.enable()
    base = f"http://{VISITOR}:{share.port}"
    owners = [os.getcwd(), str(paths.config_dir()), str(paths.data_dir()), str(paths.log_dir())]
    with visitor_http() as http:
        assert sign_in_with(http, share.port, share.password).status_code == 200
        # File inputs naming files on this computer: a blocked folder, a path relative to the cwd.
        for path in (str(paths.config_dir() / "settings.json"), "notes.png"):
            data = ["Image", "", {"path": path, "meta": {"_type": "gradio.FileData"}}, "auto"]
            asked = http.post(f"{base}/gradio_api/call/classify", json={"data": data})
            assert asked.status_code == 403 and "Only files you uploaded yourself" in asked.text
            assert not [folder for folder in owners if folder in asked.text], asked.text
    # A model name cannot tell whether a folder exists here (relative to the working directory).
    remote = Client(f"{base}/", auth=("guest", share.password), verbose=False)
    said = []
    for typed in ("desktop/tasks", "no-such/folder"):
        assert (Path.cwd() / "desktop" / "tasks").is_dir() or typed != "desktop/tasks"
        with pytest.raises(Exception) as refused:  # noqa: PT011 - any refusal; its words are compared
            remote.predict("Fine.", typed, api_name="/sentiment")
        said.append(str(refused.value).replace(typed, "NAME"))
    assert said[0] == said[1] and not [folder for folder in owners if folder in said[0]]


def test_files_holding_secrets_are_readable_by_their_owner_only(runtime):
    from desktop import settings
    from desktop.shell import instance

    password = sharing.Sharing(runtime).ensure_password()
    assert password and oct(settings.settings_file().stat().st_mode & 0o777) == "0o600"
    claimed = instance.acquire(lambda command: {"ok": True})
    try:
        assert isinstance(claimed, instance.Instance)
        claimed.publish(url="http://127.0.0.1:1/?pipedesk_token=secret")
        assert oct(instance.info_file().stat().st_mode & 0o777) == "0o600"
    finally:
        claimed.release()


def test_off_and_on_again_keeps_the_address_a_phone_saved(runtime, app_server):
    """The port sharing closed is in TIME_WAIT (a visitor was connected): it is reused anyway."""
    share = sharing.controller(local_door(runtime))
    share.requested_port = None
    try:
        share.enable()
        port = share.port
        with visitor_http() as http:
            assert http.get(f"http://{VISITOR}:{port}/").status_code == 200
            share.disable()  # the server closes the visitor's open connection: TIME_WAIT on its side
        share.enable()
        assert share.port == port
        with visitor_http() as http:
            assert http.get(f"http://{VISITOR}:{port}/").status_code == 200
    finally:
        share.disable()


def test_the_password_is_kept_across_restarts(runtime):
    first = sharing.Sharing(runtime).password
    assert sharing.Sharing(runtime).password == first


# --- the Sharing tab in a real browser -----------------------------------------------------


@pytest.mark.browser
def test_the_sharing_tab_switches_sharing_and_shows_the_banner(browser, app_server, share):
    """Driven as a person would: the tab, the box, the address shown, then the box again."""
    from tests.support import ARTIFACTS

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sharing", exact=True).click(timeout=60_000)
        banner = page.get_by_text("Shared on your network", exact=False).first
        toggle = page.get_by_label("Share on my local network")
        assert not toggle.is_checked()
        toggle.check()
        # Gradio's copy button is the first control inside these boxes' <label>, so the text box
        # itself has no accessible name: find it by the label text a person reads above it.
        addresses = page.locator("label", has_text="Addresses to open").get_by_role("textbox")
        page.wait_for_function(
            "() => /:\\d+\\//.test([...document.querySelectorAll('textarea')].map(t => t.value).join(' '))",
            timeout=60_000,
        )
        shown = addresses.input_value()
        port = int(re.search(r"^http://[\d.]+:(\d+)/$", shown.splitlines()[0]).group(1))
        assert banner.is_visible()
        assert "On." in page.locator("#lan-state").inner_text()
        # The port shown answers another device (the sign-in page) ...
        with visitor_http() as http:
            assert http.get(f"http://{VISITOR}:{port}/").status_code == 200
        password = page.locator("label", has_text="Password (give it").get_by_role("textbox")
        old = password.input_value()
        assert sign_in(port, old).status_code == 200
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sharing-tab-on.png"), full_page=True)
        page.get_by_role("button", name="New password", exact=True).click()
        page.wait_for_function(
            "old => [...document.querySelectorAll('input, textarea')].every(e => e.value !== old)",
            arg=old,
            timeout=20_000,
        )
        assert password.input_value() == share.password != old
        # ... and switched off, it is refused.
        toggle.uncheck()
        page.get_by_text("Off.", exact=False).first.wait_for(state="visible", timeout=30_000)
        assert not toggle.is_checked() and not banner.is_visible()
        assert refused(VISITOR, port)
    finally:
        page.close()


@pytest.mark.browser
def test_the_sharing_tab_says_in_words_why_sharing_could_not_start(browser, app_server, share):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", share.requested_port))  # another program holds the port
    blocker.listen()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sharing", exact=True).click(timeout=60_000)
        toggle = page.get_by_label("Share on my local network")
        toggle.check()
        page.get_by_text(f"Port {share.requested_port} is already used by another program").wait_for(
            timeout=60_000
        )
        assert not toggle.is_checked() and not share.active
        assert "Off." in page.locator("#lan-state").inner_text()
    finally:
        page.close()
        blocker.close()


@pytest.mark.browser
def test_what_a_visitor_sends_is_shown_as_text_in_the_sharing_tab(browser, app_server, share):
    agent = "[win a prize](http://evil.example/) ![x](http://127.0.0.9:9/x.png) <b>bold</b>"
    share.enable()
    with visitor_http() as http:
        http.get(f"http://{VISITOR}:{share.port}/", headers={"User-Agent": agent})
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sharing", exact=True).click(timeout=60_000)
        listing = page.locator("#lan-visitors")
        listing.get_by_text(VISITOR).wait_for(timeout=30_000)
        assert agent[:60] in listing.inner_text()  # the words, as sent
        assert listing.locator("a, img, b").count() == 0  # no link, image or markup made of them
    finally:
        page.close()


@pytest.mark.browser
def test_a_visitor_signs_in_with_the_password_only_and_is_told_when_sharing_is_switched_off(
    browser, share, client
):
    """A visitor's Chromium, reaching the sharing server from 127.0.0.2 (through a proxy): Pipedesk's
    own sign-in page (the computer's name, one password box), the app, then the owner switches
    sharing off: the open page says so, and comes back to the sign-in page once sharing is on again."""
    from desktop.share import signin
    from tests.support import ARTIFACTS
    from tests.support.pages import panel, run_and_wait
    from tests.support.visitor_proxy import VisitorProxy

    client.predict("warm up", SST2, api_name="/sentiment")  # installed here: visitors may use it
    share.enable()
    port = share.port
    name = signin.title(signin.computer_name())
    ARTIFACTS.mkdir(exist_ok=True)
    with VisitorProxy() as proxy:
        context = browser.new_context(proxy={"server": proxy.url}, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"http://{VISITOR}:{port}/")
            assert page.title() == name
            page.get_by_role("heading", name=name).wait_for()
            assert page.locator("input").count() == 1, "only a password box: no user name to type"
            password = page.get_by_label("Password", exact=True)
            password.fill("not-the-password")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("That is not the password").wait_for(timeout=20_000)
            (me,) = [v for v in share.gate.visitors() if v.address == VISITOR]
            assert me.failures == 1 and not me.signed_in, "the wrong password was not counted for 127.0.0.2"
            page.screenshot(path=str(ARTIFACTS / "visitor-sign-in.png"))

            password.fill(share.password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
            assert page.title() == name
            (me,) = [v for v in share.gate.visitors() if v.address == VISITOR]
            assert me.signed_in and me.failures == 0
            tab = panel(page, "sentiment")
            tab.get_by_label("Text").first.fill("I love this product!")
            run_and_wait(page, "sentiment")
            assert tab.locator("[data-testid='label-output-value']").first.text_content() == "POSITIVE"
            page.screenshot(path=str(ARTIFACTS / "visitor-app.png"))
            assert proxy.requests and all(f"//{VISITOR}:{port}/" in r for r in proxy.requests)

            share.disable()
            page.get_by_role("heading", name=signin.SWITCHED_OFF).wait_for(timeout=20_000)
            page.wait_for_timeout(4000)  # and it stays so: no reconnection loop, no error messages
            said = page.locator("body").inner_text()
            assert signin.SWITCHED_OFF in said and "comes back by itself" in said
            assert page.get_by_role("tab", name="Sentiment", exact=True).count() == 0
            for gradio_words in ("Connection", "Error", "Loading", "reconnect"):
                assert gradio_words not in said, said
            page.screenshot(path=str(ARTIFACTS / "visitor-switched-off.png"))

            share.enable()  # the same address: the page reloads by itself, to the sign-in page
            page.get_by_role("heading", name=name).wait_for(timeout=30_000)
            assert page.get_by_label("Password", exact=True).is_visible()
            assert errors == []
        finally:
            context.close()


# --- pipedesk serve --lan -----------------------------------------------------------------


def test_serve_lan_prints_where_and_the_password_and_stops_cleanly(pipedesk_home):
    port = free_port()
    env = cli_env(pipedesk_home, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "serve", "--lan", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("password:" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        password = re.search(r"password: (\S+)", text)
        assert password, text
        found = re.search(r":(\d+)/|port (\d+)\)", text.split("Shared on your network", 1)[1])
        lan_port = int(found.group(1) or found.group(2))
        assert refused(VISITOR, port), "the main server stays on 127.0.0.1"
        with visitor_http() as http:
            assert http.get(f"http://{VISITOR}:{lan_port}/config").status_code == 401
        assert sign_in(lan_port, password.group(1)).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    assert rc == 0
    assert refused("127.0.0.1", port) and refused(VISITOR, lan_port)


# --- a second host, in a network namespace ------------------------------------------------


FROM_NAMESPACE = """
import sys, urllib.request, urllib.parse, urllib.error, http.cookiejar
url, password = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
def status(path, data=None):
    try:
        return opener.open(url + path, data=data, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError) as e:
        return 'refused' if 'refused' in str(e).lower() else 'error: %s' % e
print(status('/config'), status('/login', urllib.parse.urlencode({'username': 'phone', 'password': password}).encode()), status('/config'))
"""


def from_namespace(ns: str, url: str, password: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", FROM_NAMESPACE, url, password],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_device_on_another_host_reaches_sharing_only_while_it_is_on(lan_namespace, share, app_server):
    ns, here, there = lan_namespace
    share.enable()
    assert f"http://{here}:{share.port}/" in share.urls()  # every non-loopback address is listed
    assert from_namespace(ns, f"http://{here}:{share.port}", "wrong-password") == "401 400 401"
    assert from_namespace(ns, f"http://{here}:{share.port}", share.password) == "401 200 200"
    assert from_namespace(ns, f"http://{here}:{app_server.port}", share.password) == "refused refused refused"
    assert any(v.address == there and v.signed_in for v in share.gate.visitors())
    share.disable()
    assert (
        from_namespace(ns, f"http://{here}:{share.requested_port}", share.password)
        == "refused refused refused"
    )
