"""The desktop app for real: a Qt window under Xvfb, one instance at a time, no-display fallback.

The window is driven like a user would (``tests.support.window_driver``): xdotool finds,
resizes, closes and destroys it, ImageMagick screenshots it, the page inside is
read through QtWebEngine's own DevTools port, and signals come as from a
terminal or a service manager.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from desktop.server import pages
from desktop.shell import geometry, instance, splash, window
from tests.support import ARTIFACTS, ROOT, cli_env, free_port, need
from tests.support.pages import message, panel, run_and_wait
from tests.support.tiny_models import VIT
from tests.support.window_driver import (
    TITLE,
    App,
    DevTools,
    close_window,
    find_window,
    refused,
    save_download,
    screenshot,
    screenshot_after,
    screenshot_drawn,
    window_geometry,
    window_page,
    xdotool,
)

pytestmark = pytest.mark.window

# --- the window ---------------------------------------------------------------------------


def test_window_opens_fast_shows_the_ui_saves_downloads_and_closes_cleanly(display, pipedesk_home, tmp_path):
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        need(False, "the websockets package is needed to read the page through DevTools")
    devtools_port = free_port()
    env = cli_env(
        pipedesk_home,
        DISPLAY=display,
        HF_HUB_OFFLINE="1",
        QTWEBENGINE_REMOTE_DEBUGGING=f"127.0.0.1:{devtools_port}",
    )
    env.pop("WAYLAND_DISPLAY", None)
    app = App(env)
    try:
        wid = find_window(display, TITLE, timeout=30)
        shown_after = time.monotonic() - app.started
        assert wid, f"no window appeared:\n{app.output}"
        print(f"window on screen {shown_after:.2f}s after start")
        assert "running at" not in app.output, "the window must not wait for torch and gradio"
        assert shown_after < 15

        # The loading page is drawn while torch and gradio import.
        deadline = time.monotonic() + 20
        colours, top = screenshot(display, tmp_path / "loading.png")
        while (colours < 50 or top > 0.98) and time.monotonic() < deadline and "running at" not in app.output:
            time.sleep(0.3)
            colours, top = screenshot(display, tmp_path / "loading.png")
        if "running at" not in app.output:  # on a fast machine the UI may already be there
            assert colours >= 50 and top < 0.98, (
                f"the loading page is blank: {colours} colours, top {top:.0%}"
            )
            print(f"loading page drawn {time.monotonic() - app.started:.2f}s after start")

        url = app.wait_for(r"running at (http://127\.0\.0\.1:(\d+)/)")
        port = int(url.group(2))
        tools = DevTools(devtools_port)
        assert tools.wait_for_ui(url.group(1)), "the app never appeared in the window"
        assert tools.evaluate("document.title") == "Pipedesk"
        colours, top = screenshot_drawn(display, tmp_path / "ui.png")
        assert colours > 200 and top < 0.9, f"the window looks blank: {colours} colours, top {top:.0%}"

        # One instance: a second launch brings this window forward and starts no server.
        second = subprocess.run(
            [sys.executable, "-m", "desktop"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout and "running at" not in second.stdout
        log_text = (pipedesk_home / "logs" / "pipedesk.log").read_text(encoding="utf-8")
        assert "A second launch asked for the window" in log_text
        # The window's key (its per-launch token) is in no output, log or file another program reads.
        info = "".join(p.read_text(errors="replace") for p in pipedesk_home.rglob("*.json"))
        assert "pipedesk_token" not in app.output + second.stdout + log_text + info

        # A download from the page is saved where the user says (the Save dialog is Qt's own).
        target = tmp_path / "saved" / "results.csv"
        target.parent.mkdir()
        tools.evaluate(
            "(() => { const a = document.createElement('a');"
            " a.href = URL.createObjectURL(new Blob(['text,label\\nhi,POSITIVE\\n'], {type: 'text/csv'}));"
            " a.download = 'results.csv'; document.body.appendChild(a); a.click(); return 1; })()"
        )
        assert save_download(display, target) == "text,label\nhi,POSITIVE\n"

        # Resize, then close the window like a user: the process ends, the port is free.
        xdotool(display, "windowsize", str(wid), "900", "700")
        time.sleep(0.5)
        closed_at = time.monotonic()
        close_window(display, wid)
        rc = app.proc.wait(timeout=30)
        print(f"exited {time.monotonic() - closed_at:.2f}s after the close request")
        assert rc == 0, app.output
        assert refused(port)
        saved = json.loads((pipedesk_home / "config" / "settings.json").read_text(encoding="utf-8"))
        assert (saved["window"]["width"], saved["window"]["height"]) == (900, 700)
        assert (pipedesk_home / "data" / "webview" / "Local Storage").is_dir(), (
            "web storage is not persistent"
        )
        assert not (pipedesk_home / "data" / instance.INFO_NAME).exists()
    finally:
        app.stop()


def test_one_loading_screen_from_the_first_frame_to_the_app_on_a_laptop_screen(laptop_display, pipedesk_home):
    """Watched frame by frame (every 30 ms): from the moment the window appears, it shows the splash,
    then the app, and nothing else: no empty or black window, no Gradio "Loading…", no half-built page.
    The window, title bar and taskbar included, fits a 1366x768 screen."""
    from tests.support.screen import Recorder, kind_of

    env = window_env(pipedesk_home, laptop_display)
    recorder = Recorder(laptop_display)
    app = App(env)
    try:
        wid = find_window(laptop_display, TITLE, timeout=60)
        assert wid, f"no window appeared:\n{app.output}"
        x, y, width, height = window_geometry(laptop_display, wid)
        assert_fits({"x": x, "y": y, "width": width, "height": height}, 1366, 768)
        deadline = time.monotonic() + 150
        while "The app is on screen" not in log_text(pipedesk_home) and time.monotonic() < deadline:
            assert app.proc.poll() is None, app.output
            time.sleep(0.2)
        shown = re.search(
            r"The app is on screen, ([\d.]+)s after the process started \((\w+)\)", log_text(pipedesk_home)
        )
        assert shown, f"the page never said the app is on screen:\n{app.output}"
        assert shown.group(2) == "ready", "the splash went on a timer, not when the app had its first values"
        time.sleep(1.5)  # the app as it stays: the picture every app frame is compared with
        frames = recorder.stop()
    finally:
        recorder.stop()
        app.stop()
    box = (x, y, x + width, y + height)
    final = frames[-1].image.crop(box)
    kinds = [(frame.at, kind_of(frame.image.crop(box), final), frame) for frame in frames]
    while kinds and kinds[0][1] == "black":  # the screen before the window was mapped
        kinds.pop(0)
    ARTIFACTS.mkdir(exist_ok=True)
    seen = [kind for _, kind, _ in kinds]
    bad = [(at, kind, frame) for at, kind, frame in kinds if kind not in ("splash", "app")]
    for at, kind, frame in bad[:3]:
        frame.image.save(ARTIFACTS / f"startup-{kind}-{at:.2f}s.png")
    assert not bad, f"frames that are neither the splash nor the app: {[(round(a, 2), k) for a, k, _ in bad]}"
    assert seen[0] == "splash" and seen[-1] == "app"
    first_app = seen.index("app")
    assert "splash" not in seen[first_app:], "the splash came back after the app was shown"
    # Kept to be looked at: the first frame, the last splash, the first app frame.
    for name, index in (("first", 0), ("last-splash", first_app - 1), ("first-app", first_app)):
        kinds[index][2].image.crop(box).save(ARTIFACTS / f"startup-{name}.png")
    painted = kinds[first_app][0] - (app.started - recorder.started)
    print(
        f"{len(kinds)} different frames; the app on screen {painted:.2f}s after start (its page says {shown.group(1)}s)"
    )


def test_a_saved_place_off_every_screen_is_not_restored(laptop_display, pipedesk_home):
    """Closed last on a big monitor that is gone: the window opens whole on the laptop's screen."""
    from desktop import settings

    settings.update(window={"width": 1900, "height": 1200, "x": 2500, "y": -300})
    app = App(window_env(pipedesk_home, laptop_display))
    try:
        wid = find_window(laptop_display, TITLE, timeout=60)
        assert wid, f"no window appeared:\n{app.output}"
        x, y, width, height = window_geometry(laptop_display, wid)
        assert_fits({"x": x, "y": y, "width": width, "height": height}, 1366, 768)
        close_window(laptop_display, wid)
        assert app.proc.wait(timeout=60) == 0, app.output
    finally:
        app.stop()


def window_env(home: Path, display: str, **extra: str) -> dict[str, str]:
    env = cli_env(home, DISPLAY=display, HF_HUB_OFFLINE="1", **extra)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def log_text(home: Path) -> str:
    return (home / "logs" / "pipedesk.log").read_text(encoding="utf-8")


def test_a_window_destroyed_by_another_program_stops_the_app_and_a_new_launch_opens_one(
    display, pipedesk_home, tmp_path
):
    """``xdotool windowclose`` destroys the X window: Qt does not notice by itself (no close event)."""
    env = window_env(pipedesk_home, display)
    app = App(env)
    relaunch = None
    try:
        wid = find_window(display, TITLE, timeout=30)
        assert wid, f"no window appeared:\n{app.output}"
        port = int(app.wait_for(r"running at http://127\.0\.0\.1:(\d+)/").group(1))
        xdotool(display, "windowclose", str(wid))
        assert not find_window(display, TITLE, timeout=1), "xdotool did not destroy the window"
        # Launched at once, while the first may still be stopping: it must not report a window
        # that is gone, and opens its own once the first has let go.
        relaunch = App(env)
        assert app.proc.wait(timeout=30) == 0, app.output
        assert refused(port), "the server still holds its port"
        assert "Pipedesk stopped cleanly (the window was destroyed by another program)" in log_text(
            pipedesk_home
        )
        assert find_window(display, TITLE, timeout=60), f"the new launch opened no window:\n{relaunch.output}"
        assert "brought to the front" not in relaunch.output
        assert "already running" not in relaunch.output
        deadline = time.monotonic() + 20
        colours, top = screenshot(display, tmp_path / "relaunched.png")
        while (colours < 50 or top > 0.98) and time.monotonic() < deadline:
            time.sleep(0.3)
            colours, top = screenshot(display, tmp_path / "relaunched.png")
        assert colours >= 50 and top < 0.98, f"the new window is blank: {colours} colours, top {top:.0%}"

        # Ctrl+C in a terminal (SIGINT) closes that window as a close does, even while it loads.
        relaunch.proc.send_signal(signal.SIGINT)
        assert relaunch.proc.wait(timeout=30) == 0, relaunch.output
        assert "Pipedesk stopped cleanly (SIGINT received)" in log_text(pipedesk_home)
        assert not find_window(display, TITLE, timeout=1)
        assert not (pipedesk_home / "data" / instance.INFO_NAME).exists()
    finally:
        app.stop()
        if relaunch is not None:
            relaunch.stop()


def test_a_crashed_page_is_reloaded_and_sigterm_stops_the_window_app_cleanly(
    display, pipedesk_home, tmp_path
):
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        need(False, "the websockets package is needed to reach the page through DevTools")
    devtools_port = free_port()
    env = window_env(pipedesk_home, display, QTWEBENGINE_REMOTE_DEBUGGING=f"127.0.0.1:{devtools_port}")
    app = App(env)
    try:
        found = app.wait_for(r"running at (http://127\.0\.0\.1:(\d+)/)")
        url, port = found.group(1), int(found.group(2))
        tools = DevTools(devtools_port)
        assert tools.wait_for_ui(url), "the app never appeared in the window"

        # The page's renderer process crashes (Chromium's own crash, through DevTools): Qt leaves
        # the window blank; the app reloads the page and the user can go on.
        assert tools.crash()
        assert tools.wait_for_ui(url), "the page stayed dead after its renderer crashed"
        colours, top = screenshot_drawn(display, tmp_path / "reloaded.png")
        assert colours > 200 and top < 0.9, f"the window looks blank: {colours} colours, top {top:.0%}"

        # SIGTERM (a logout, `kill`, a service manager): the same clean stop as closing the window.
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=30) == 0, app.output
        assert refused(port), "the server still holds its port"
        text = log_text(pipedesk_home)
        assert f"Server on {url} stopped" in text
        assert "Pipedesk stopped cleanly (SIGTERM received)" in text
        assert not find_window(display, TITLE, timeout=1)
        assert not (pipedesk_home / "data" / instance.INFO_NAME).exists()
    finally:
        app.stop()


REVIEWS = ["I love this product!", "This is terrible, I hate it.", "", "What a great movie, truly amazing."]


def test_the_main_flows_work_inside_the_window_as_in_chromium(
    display, hub, tiny_models, pipedesk_home, tmp_path, playwright_session
):
    """Playwright attaches to the window's own QtWebEngine (its DevTools port) and drives the page
    as ``test_task_tabs``/``test_batch_tab`` do in Chromium: by label and role, typing, uploading,
    clicking Run, reading what is shown; the export is saved through the window's Save dialog."""
    from contextlib import nullcontext

    devtools_port = free_port()
    env = cli_env(
        pipedesk_home, hub, DISPLAY=display, QTWEBENGINE_REMOTE_DEBUGGING=f"127.0.0.1:{devtools_port}"
    )
    env.pop("WAYLAND_DISPLAY", None)  # the tiny models download from the local Hub on first use
    app = App(env)
    try:
        url = app.wait_for(r"running at (http://127\.0\.0\.1:(\d+)/)").group(1)
        wid = find_window(display, TITLE, timeout=30)
        assert wid, f"no window appeared:\n{app.output}"
        errors: list[str] = []
        with nullcontext(playwright_session) as p:
            page = window_page(p, devtools_port)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            assert page.url.startswith(url)

            # Sentiment: type, Run, read the label; an error's words stay next to the output.
            tab = panel(page, "sentiment")
            tab.get_by_label("Text").first.fill("I love this product!")
            run_and_wait(page, "sentiment")
            assert tab.locator("[data-testid='label-output-value']").first.text_content() == "POSITIVE"
            tab.get_by_label("Text").first.fill("ok")
            run_and_wait(page, "sentiment")
            assert "too short" in message(page, "sentiment")

            # Classify an image uploaded through the upload box: the top label is one of the model's.
            from PIL import Image

            picture = tmp_path / "sea.png"
            Image.new("RGB", (64, 48), (20, 60, 200)).save(picture)
            labels = json.loads((tiny_models[VIT] / "config.json").read_text(encoding="utf-8"))["id2label"]
            tab = panel(page, "classify")
            tab.get_by_label("Image", exact=True).first.check()
            tab.locator("input[type=file]").set_input_files(str(picture))
            tab.locator("img").first.wait_for(timeout=20_000)
            run_and_wait(page, "classify")
            assert tab.locator("[data-testid='label-output-value']").first.text_content() in labels.values()
            assert message(page, "classify") == ""

            # Batch: upload a CSV, Run, the results table and the chart; the export saved as a file.
            source = tmp_path / "reviews.csv"
            source.write_text(
                "id,review\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(REVIEWS)), encoding="utf-8"
            )
            page.get_by_role("tab", name="Batch", exact=True).click()
            page.locator("#batch-file input[type=file]").set_input_files(str(source))
            page.locator("#batch-info").get_by_text("4 rows").wait_for(timeout=30_000)
            page.locator("#batch-run").click()
            page.locator("#batch-progress").get_by_text("finished").wait_for(timeout=120_000)
            assert "POSITIVE" in page.locator("#batch-results").text_content()
            bars = page.locator("#batch-chart [data-label]")
            counts = {
                bars.nth(i).get_attribute("data-label"): int(
                    bars.nth(i).locator(".pd-bar-count").text_content()
                )
                for i in range(bars.count())
            }
            shot = ARTIFACTS / "window-batch.png"  # kept to be looked at
            shot.parent.mkdir(exist_ok=True)
            colours, top = screenshot_after(  # scrolled down to the results, as a person does
                display, shot, page.locator("#batch-chart").scroll_into_view_if_needed
            )
            assert colours > 200 and top < 0.9, f"the window looks blank: {colours} colours, top {top:.0%}"
            page.get_by_role("button", name="Download results").click()
            saved = save_download(display, tmp_path / "saved" / "reviews-sentiment.csv")
            rows = list(csv.DictReader(io.StringIO(saved)))
            assert [row["review"] for row in rows] == REVIEWS
            labelled = [row["label"] for row in rows if row["label"]]
            assert {label: labelled.count(label) for label in labelled} == counts  # the chart says the same
            assert errors == []
        close_window(display, wid)
        assert app.proc.wait(timeout=30) == 0, app.output
    finally:
        app.stop()


# --- no display ---------------------------------------------------------------------------


def test_without_a_display_it_says_so_serves_and_a_second_launch_reuses_it(pipedesk_home):
    env = cli_env(pipedesk_home, HF_HUB_OFFLINE="1")
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(var, None)
    app = App(env)
    try:
        url = app.wait_for(r"running at (http://127\.0\.0\.1:(\d+)/)")
        assert "No display found" in app.output
        assert httpx.get(url.group(1) + "config", timeout=10).status_code == 200
        second = subprocess.run(
            [sys.executable, "-m", "desktop"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 0
        assert f"already running at {url.group(1)}" in second.stdout
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=30) == 0
        assert refused(int(url.group(2)))
    finally:
        app.stop()


# --- the lock -----------------------------------------------------------------------------

HOLDER = """
import sys, time
from desktop.shell import instance
claimed = instance.acquire(lambda command: {"ok": True, "url": "http://127.0.0.1:1/", "window": False})
print("holding", flush=True)
time.sleep(120)
"""


def test_a_lock_left_by_a_crash_is_cleared_and_a_live_one_is_respected(pipedesk_home):
    env = cli_env(pipedesk_home)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        found = instance.acquire(lambda command: {})
        assert isinstance(found, instance.Running)
        assert found.pid == holder.pid and found.reply == {
            "ok": True,
            "url": "http://127.0.0.1:1/",
            "window": False,
        }
        info = json.loads(instance.info_file().read_text(encoding="utf-8"))
        assert instance.send("show", {**info, "token": "wrong"}) is None  # the token is checked
    finally:
        holder.kill()  # a crash: no clean-up ran
        holder.wait(timeout=10)
    assert instance.info_file().exists(), "the crashed holder left its lock info behind"
    claimed = instance.acquire(lambda command: {"ok": True})
    try:
        assert isinstance(claimed, instance.Instance)
        assert claimed.stale and claimed.stale["pid"] == holder.pid
        assert instance.send("show") == {"ok": True}
    finally:
        claimed.release()
    assert not instance.info_file().exists()


STOPPING_HOLDER = """
import time
from desktop.shell import instance
claimed = instance.acquire(lambda command: {"ok": True, "stopping": True, "pid": 1})
print("holding", flush=True)
time.sleep(2)  # still stopping: its server closing, say
claimed.release()
time.sleep(120)
"""


def test_a_launch_during_a_stop_waits_and_becomes_the_instance(pipedesk_home):
    """A window just closed (or lost): the next launch must open its own, not report that one."""
    holder = subprocess.Popen(
        [sys.executable, "-c", STOPPING_HOLDER],
        env=cli_env(pipedesk_home),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        claimed = instance.acquire(lambda command: {"ok": True})
        try:
            assert isinstance(claimed, instance.Instance), f"reported the stopping one: {claimed}"
            assert holder.poll() is None, "the holder died, so this proves nothing"
            assert instance.send("show") == {"ok": True}
        finally:
            claimed.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)


# --- pure parts ---------------------------------------------------------------------------


def test_display_detection(monkeypatch, tmp_path):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert window.display_available() is (sys.platform in ("win32", "darwin"))
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("DISPLAY", ":987654")  # no such X server socket
        assert window.display_available() is False
        monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "wayland-0"))
        (tmp_path / "wayland-0").touch()
        assert window.display_available() is True


def test_remembered_geometry_is_sane_and_the_title_bar_stays_on_a_screen(pipedesk_home):
    from desktop import settings

    settings.update(window={"width": 50, "height": 99999, "x": 3000, "y": 40, "maximized": True})
    saved = geometry.saved()
    assert saved == {"width": geometry.MIN_SIZE[0], "height": 10_000, "x": 3000, "y": 40, "maximized": 1}
    laptop = geometry.Screen(0, 0, 1366, 768)  # no work area known: room is kept for a taskbar
    fitted = geometry.fit(saved, [laptop])
    assert fitted["maximized"] == 1
    assert_fits(fitted, 1366, 768)  # a monitor that is gone: centred, and no taller than the screen
    # A title bar above the screen, or below it, or with less than a grip on it: not restored.
    for x, y in ((100, -30), (100, 700), (1366 - 60, 100), (-1200 + 60, 100)):
        assert_fits(geometry.fit({"width": 1200, "height": 600, "x": x, "y": y}, [laptop]), 1366, 768)
    # A place whose title bar is on a screen is kept; the size then fits that screen.
    kept = geometry.fit(
        {"width": 1900, "height": 1200, "x": 1500, "y": 60}, [laptop, geometry.Screen(1366, 0, 1920, 1080)]
    )
    assert (kept["x"], kept["y"]) == (1500, 60) and kept[
        "height"
    ] <= 1080 - geometry.TASKBAR - geometry.TITLE_BAR
    # The first time: the preferred size where it fits; within the work area the system reports.
    assert geometry.fit({}, [geometry.Screen(0, 0, 1920, 1080)])["height"] == geometry.PREFERRED_SIZE[1]
    panel = geometry.Screen(0, 0, 1366, 768, work=(0, 32, 1366, 736))
    first = geometry.fit({}, [panel])
    assert first["y"] >= 32 and first["y"] + first["height"] + geometry.TITLE_BAR <= 768


def assert_fits(placed: dict[str, int], width: int, height: int) -> None:
    """The whole window, its title bar included, is on a ``width`` x ``height`` screen above a taskbar."""
    x, y, w, h = placed["x"], placed["y"], placed["width"], placed["height"]
    assert x >= 0 and x + w <= width, placed
    assert y >= 0 and y + geometry.TITLE_BAR + h <= height - geometry.TASKBAR, placed


def test_the_splash_goes_first_in_the_apps_page():
    page = b"<!doctype html><html><head><title>x</title></head><body style='margin: 0'><gradio-app></gradio-app></body></html>"
    fragment = splash.app_fragment().encode()
    out = pages.insert_first_in_body(page, fragment)
    assert out.index(b"<body style='margin: 0'>") + len(b"<body style='margin: 0'>") == out.index(fragment)
    assert out.index(fragment) < out.index(b"<gradio-app>")
    assert pages.insert_first_in_body(b"<p>no body</p>", fragment) == b"<p>no body</p>"
    for text in (splash.TAGLINE, splash.OPENING, splash.DRAWN, splash.READY_EVENT, splash.PAINTED_MARK):
        assert text in fragment.decode()
    loading = splash.loading_page()
    assert "function setStep" in loading and "function showError" in loading and splash.DRAWN in loading
