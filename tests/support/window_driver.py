"""Driving the desktop app like a user: a subprocess, its X window (xdotool, ImageMagick), its page.

The window is found, resized and screenshot with xdotool and ImageMagick's
``import``; closing sends WM_DELETE_WINDOW, which is what a window manager sends
when the close button is clicked (Xvfb has no window manager, so it is sent
through libX11 itself). The page inside is read through QtWebEngine's own
DevTools port. Used by ``test_window.py`` and ``test_build.py``.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from . import ROOT

#: The window's title ("Pipedesk 0.1.0"), as xdotool searches for it.
TITLE = "^Pipedesk [0-9]"


class App:
    """``python -m desktop`` in a subprocess, its output collected on a thread."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "desktop", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 150) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            assert self.proc.poll() is None, f"the app exited early:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not printed in {timeout}s:\n{self.output}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def open_window(env: dict[str, str], display: str, devtools_port: int) -> tuple[App, int]:
    """The window app on ``display`` with its page reachable through DevTools on ``devtools_port``:
    started, serving and on screen; returns the app and its window id (the caller stops the app)."""
    env = {**env, "DISPLAY": display, "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{devtools_port}"}
    env.pop("WAYLAND_DISPLAY", None)
    app = App(env)
    try:
        app.wait_for(r"running at (http://127\.0\.0\.1:\d+/)")
        wid = find_window(display, TITLE, timeout=60)
        assert wid, f"no window appeared:\n{app.output}"
    except BaseException:
        app.stop()
        raise
    return app, wid


def xdotool(disp: str, *args: str) -> str:
    done = subprocess.run(
        ["xdotool", *args], env={**os.environ, "DISPLAY": disp}, capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip()


def find_window(disp: str, title: str, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = xdotool(disp, "search", "--onlyvisible", "--name", title)
        if found:
            return int(found.split()[0])
        time.sleep(0.05)
    return None


def window_geometry(disp: str, wid: int) -> tuple[int, int, int, int]:
    """Where the window is on the screen and how big: x, y, width, height."""
    values = dict(
        line.split("=", 1) for line in xdotool(disp, "getwindowgeometry", "--shell", str(wid)).splitlines()
    )
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


def _grab(disp: str, path: Path):
    from PIL import Image

    subprocess.run(["import", "-display", disp, "-window", "root", str(path)], check=True, timeout=30)
    return Image.open(path).convert("RGB")


def screenshot(disp: str, path: Path) -> tuple[int, float]:
    """Save the screen to ``path``; return (distinct colours, share of the most common colour)."""
    image = _grab(disp, path)
    colours = image.getcolors(maxcolors=1 << 24)
    top = max(count for count, _ in colours)
    return len(colours), top / (image.width * image.height)


def screenshot_drawn(disp: str, path: Path, timeout: float = 20) -> tuple[int, float]:
    """:func:`screenshot` once the window shows a drawn page (over 200 colours, no colour on 90% of
    the screen), or the last one after ``timeout``: a busy machine paints a moment after the page
    has loaded, and Gradio shows its loading screen first."""
    deadline = time.monotonic() + timeout
    while True:
        colours, top = screenshot(disp, path)
        if (colours > 200 and top < 0.9) or time.monotonic() > deadline:
            return colours, top
        time.sleep(0.5)


def screenshot_after(
    disp: str, path: Path, change: Callable[[], object], timeout: float = 15
) -> tuple[int, float]:
    """Do ``change`` (a scroll, say), then :func:`screenshot` once the screen shows it: on a busy
    machine the window paints a moment after the page has changed."""
    before = _grab(disp, path).tobytes()
    change()
    deadline = time.monotonic() + timeout
    while _grab(disp, path).tobytes() == before and time.monotonic() < deadline:
        time.sleep(0.3)
    return screenshot(disp, path)


def answer_dialog(disp: str, title: str, path: Path, timeout: float = 60) -> None:
    """Type ``path`` into the window's file dialog titled ``title`` (Qt's own: "Save file", "Open
    folder") as a person does, and press Return."""
    dialog = find_window(disp, f"^{title}$", timeout=timeout)
    assert dialog, f"no {title!r} dialog"
    xdotool(disp, "windowfocus", "--sync", str(dialog))
    time.sleep(0.5)  # a dialog just mapped on a loaded machine gives its name box the focus a moment later
    # Real key presses (XTEST) to the focused dialog, as a keyboard sends them: Qt may drop the
    # synthetic events xdotool sends to a named window.
    xdotool(disp, "key", "ctrl+a")
    xdotool(disp, "type", "--delay", "10", str(path))
    for _ in range(3):  # an Enter taken by the path completer's list only completes: press it again
        xdotool(disp, "key", "Return")
        if not find_window(disp, f"^{title}$", timeout=2):
            return


def save_download(disp: str, target: Path, timeout: float = 20) -> str:
    """Answer the window's Save dialog (Qt's own) with ``target`` as a person types it; the saved text."""
    answer_dialog(disp, "Save file", target, timeout)
    deadline = time.monotonic() + timeout
    while not (target.exists() and target.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), f"the download was not saved as {target}"
    return target.read_text(encoding="utf-8-sig")


def close_window(disp: str, wid: int) -> None:
    """Send WM_DELETE_WINDOW, as a window manager does when the user clicks the close button."""

    class ClientMessage(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int),
            ("serial", ctypes.c_ulong),
            ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p),
            ("window", ctypes.c_ulong),
            ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int),
            ("data", ctypes.c_long * 5),
        ]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(disp.encode())
    assert dpy, f"cannot open display {disp}"
    event = XEvent()
    event.xclient.type = 33  # ClientMessage
    event.xclient.window = wid
    event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
    event.xclient.format = 32
    event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    assert x11.XSendEvent(dpy, wid, 0, 0, ctypes.byref(event))
    x11.XFlush(dpy)
    x11.XCloseDisplay(dpy)


def window_page(playwright, devtools_port: int):
    """Playwright attached to the window's own QtWebEngine page (its DevTools port), once the app's
    tabs are there. ``no_defaults``: the window keeps its own settings (downloads through its Save
    dialog; QtWebEngine refuses Playwright's download override)."""
    window_browser = playwright.chromium.connect_over_cdp(
        f"http://127.0.0.1:{devtools_port}", no_defaults=True, timeout=60_000
    )
    page = window_browser.contexts[0].pages[0]
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=90_000)
    assert "QtWebEngine" in page.evaluate("navigator.userAgent"), "not the window's web view"
    return page


class DevTools:
    """QtWebEngine's DevTools port (QTWEBENGINE_REMOTE_DEBUGGING): the page's URL and DOM."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def page(self) -> dict:
        pages = [p for p in httpx.get(f"{self.base}/json/list", timeout=5).json() if p["type"] == "page"]
        return pages[0]

    def call(self, method: str, params: dict) -> dict:
        """One DevTools command on the page; its reply (``result`` or ``error``)."""
        from websockets.sync.client import connect

        with connect(self.page()["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            ws.send(json.dumps({"id": 1, "method": method, "params": params}))
            while True:
                reply = json.loads(ws.recv(timeout=20))
                if reply.get("id") == 1:
                    return reply

    def crash(self) -> bool:
        """Crash the page's renderer process (Chromium's own ``Page.crash``); True once it crashed."""
        from websockets.sync.client import connect

        with connect(self.page()["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            ws.send(json.dumps({"id": 1, "method": "Inspector.enable", "params": {}}))
            ws.send(json.dumps({"id": 2, "method": "Page.crash", "params": {}}))
            while True:  # the event says it crashed; the command's own reply may never come
                message = json.loads(ws.recv(timeout=20))
                if message.get("method") == "Inspector.targetCrashed" or message.get("id") == 2:
                    return True

    def evaluate(self, expression: str):
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return reply["result"]["result"].get("value")

    def wait_for_ui(self, url: str, timeout: float = 60) -> bool:
        """True once the page at ``url`` shows the app (its first Run button); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.page()["url"] == url and self.evaluate("!!document.querySelector('#run-sentiment')"):
                    return True
            except Exception:  # a page being replaced or a renderer that is gone: ask again
                pass
            time.sleep(0.5)
        return False


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True
