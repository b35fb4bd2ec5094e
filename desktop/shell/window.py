"""The desktop app: a native window over a background server, one instance at a time.

``run_app`` runs on the main thread, which the GUI loop needs. Order matters for
a fast start: take the single-instance lock, open the window on the splash
(:mod:`desktop.shell.splash`; only pywebview and Qt are imported by then; the window
is shown once the splash has loaded, so its first frame is never empty), and import
gradio on the *loader* thread, which then starts the Gradio server on 127.0.0.1 and
points the window at it: the app's page keeps the same splash over it until the app
has painted, so a person sees one loading screen, then the app. Where the window goes
and how big is :mod:`desktop.shell.geometry`. Closing the window ends the GUI loop;
the main thread then stops sharing and the server (the port is free when ``run_app``
returns) and the process exits. SIGTERM, SIGINT and a window destroyed by another
program end it the same way (:class:`desktop.shell.qt_patches.WindowGuard`). Without
a display, the app says so and serves instead, printing the URL.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop import __version__, assets, logs, paths
from desktop.shell import geometry as placement
from desktop.shell import instance, splash

log = logging.getLogger(__name__)

TITLE = f"Pipedesk {__version__}"  # the version, where a person looks for it
ROOT_QT_FLAGS = "--no-sandbox --disable-gpu --disable-gpu-compositing"
#: Signals that close the window and stop the app cleanly, as closing it does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The window's app warms up (torch, transformers) once its page is on screen, or this long after
#: its server started, whichever comes first.
WARM_UP_AT_LATEST_S = 30.0


@dataclass
class AppState:
    """What the main thread, the loader thread and the control channel share."""

    window: Any = None
    door: Any = None  # the owner's door to the engine (desktop.engine.client)
    server: Any = None
    url: str | None = None
    closed: threading.Event = field(default_factory=threading.Event)
    geometry: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None  # why the app is stopping, when something other than a close did it
    close_window: Callable[[], None] | None = None  # closes the window as a user would (any thread)
    page_shown: threading.Event = field(default_factory=threading.Event)  # the app is on screen
    cover: Any = None  # desktop.shell.cover.Cover over the window's page (Qt)
    warm_up: threading.Lock = field(default_factory=threading.Lock)  # taken by the one warm-up

    def stopping(self) -> bool:
        """True from the moment the app starts to stop (a close, a signal, a lost window)."""
        window_closed = self.window is not None and self.window.events.closed.is_set()
        return self.closed.is_set() or self.stop_reason is not None or window_closed

    def command(self, name: str) -> dict[str, Any]:
        """Answer a second launch (control thread): bring the window forward, if there really is one."""
        if name != "show":
            return {"ok": False, "error": f"unknown command {name!r}"}
        if self.stopping():  # the window is closed or gone: the launch waits and opens a new one
            return {"ok": True, "stopping": True, "pid": os.getpid()}
        log.info("A second launch asked for the window")
        if self.window is not None:  # not stopping: pywebview's window is open (or opening)
            if self.geometry.get("minimized"):
                self.window.restore()
            self.window.show()
        url = self.server.url if self.server is not None else None  # never the window's token
        return {"ok": True, "url": url, "window": self.window is not None, "pid": os.getpid()}

    def request_stop(self, reason: str) -> None:
        """Stop the app because of ``reason`` (any thread, signal handlers too): close the window."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.info("Stopping: %s", reason)
        if self.close_window is not None:
            try:
                self.close_window()
            except Exception:  # the GUI is not up yet: the window closes once shown
                log.debug("Could not close the window yet", exc_info=True)

    def stop(self) -> None:
        """Stop sharing and the server (main thread, after the window closed or Ctrl+C)."""
        self.closed.set()
        if self.door is not None:
            from desktop.share import controller as sharing

            sharing.stop_sharing(self.door)
        if self.server is not None:
            self.server.stop()
            log.info("Server on %s stopped", self.server.url)


def run_app(args: argparse.Namespace) -> int:
    """``pipedesk`` with no command: the window, or a second launch's hand-over, or headless serving."""
    logs.setup()
    state = AppState()
    claimed = instance.acquire(state.command)
    if isinstance(claimed, instance.Running):
        return _report_running(claimed)
    try:
        if not display_available():
            print("No display found: serving Pipedesk here instead of opening a window.", flush=True)
            return _serve(args, state, claimed)
        try:
            import webview  # noqa: F401  (Qt libraries missing or broken: serve instead)
        except Exception as exc:
            log.exception("The window toolkit could not be loaded")
            print(f"The window could not open ({exc}); serving Pipedesk instead.", flush=True)
            return _serve(args, state, claimed)
        return _run_window(args, state, claimed)
    finally:
        claimed.release()


def _report_running(running: instance.Running) -> int:
    reply = running.reply
    if reply is None:
        print(
            f"Pipedesk seems to be running already (process {running.pid}) but does not answer. "
            "If it is stuck, end that process and start Pipedesk again.",
            file=sys.stderr,
        )
        return 1
    url = reply.get("url")
    if reply.get("stopping"):
        print(
            f"Pipedesk (process {running.pid}) is still stopping. Start it again in a moment.",
            file=sys.stderr,
        )
        return 1
    if reply.get("window"):
        print("Pipedesk is already running: its window was brought to the front.", flush=True)
    else:
        print(f"Pipedesk is already running at {url or '(still starting)'}", flush=True)
    return 0


def display_available() -> bool:
    """True when a window can open: always on Windows and macOS; X11 or Wayland elsewhere."""
    if sys.platform in ("win32", "darwin"):
        return True
    wayland = os.environ.get("WAYLAND_DISPLAY", "").strip()
    if wayland:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
        if (Path(wayland) if os.path.isabs(wayland) else Path(runtime_dir) / wayland).exists():
            return True
    display = os.environ.get("DISPLAY", "").strip()
    if not display:
        return False
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if host in ("", "unix") and number.isdigit():
        return Path(f"/tmp/.X11-unix/X{number}").exists()
    return True  # a remote or forwarded display: let the toolkit try


# --- headless -----------------------------------------------------------------------------


def _serve(args: argparse.Namespace, state: AppState, claimed: instance.Instance) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _start_server(args, state, claimed)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
    finally:
        state.stop()
    return 0


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _start_server(args: argparse.Namespace, state: AppState, claimed: instance.Instance) -> None:
    """Import the heavy parts, build the UI and serve it on 127.0.0.1 (loader or main thread)."""
    from desktop.engine.start import open_door

    started = time.perf_counter()
    state.door = open_door(getattr(args, "device", None), own_process=True, warm=False, preload=True)
    from desktop import server
    from desktop.ui.app import build_app

    _step(state, "Building the interface…")
    if state.window is not None:  # the interface gets "Choose…" buttons that open the system's dialogs
        from desktop.ui import native

        native.provide(lambda kind, start: _choose_path(state.window, kind, start))
    blocks = build_app(state.door)
    if state.closed.is_set():
        return
    options: dict[str, Any] = {}
    token = None
    if state.window is not None:
        # The window's server answers only the window: a per-launch token, kept in a cookie
        # (desktop/server/gate.py); and its page comes with the splash over it until it has painted.
        token = server.new_token()
        options["app_kwargs"] = {"middleware": [splash.middleware()]}
    state.server = server.start(
        blocks, host="127.0.0.1", port=getattr(args, "port", None), token=token, **options
    )
    state.url = state.server.open_url  # the window's own: its token stays out of output, logs and files
    claimed.publish(url=state.server.url)
    log.info("Ready in %.1fs at %s", time.perf_counter() - started, state.server.url)
    print(f"Pipedesk is running at {state.server.url}  (log: {logs.log_file()})", flush=True)
    if state.window is None:
        _warm_up(state)  # torch and transformers load while the page is usable
    else:  # once the app is on screen: importing them beside the page's loading slowed it by seconds
        fallback = threading.Timer(WARM_UP_AT_LATEST_S, _warm_up, args=(state,))
        fallback.daemon = True
        fallback.start()


def _choose_path(window: Any, kind: str, start: str) -> str | None:
    """A folder ("folder") or file ("file") chosen in the system's dialog over ``window``, or None
    (any thread: pywebview runs the dialog on the GUI thread and this waits for the answer)."""
    import webview

    dialog = webview.FileDialog.FOLDER if kind == "folder" else webview.FileDialog.OPEN
    chosen = window.create_file_dialog(dialog, directory=start if Path(start).is_dir() else "")
    return str(chosen[0]) if chosen else None


def _warm_up(state: AppState) -> None:
    """Import torch and transformers and choose the device in the background, once (any thread)."""
    if state.door is not None and state.warm_up.acquire(blocking=False):
        state.door.warm_up_in_background()


# --- the window ---------------------------------------------------------------------------


def _prepare_qt() -> None:
    """QtWebEngine refuses to run as root without --no-sandbox (and draws black without --disable-gpu)."""
    if sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", ROOT_QT_FLAGS)


def _step(state: AppState, text: str) -> None:
    if state.window is not None and not state.closed.is_set():
        try:
            state.window.run_js(f"setStep({json.dumps(text)})")
        except Exception:  # only a progress note: never worth failing the start for
            log.debug("Could not update the loading page", exc_info=True)


def _load(state: AppState, args: argparse.Namespace, claimed: instance.Instance) -> None:
    """The loader thread: heavy imports, the server, then the UI in the window."""
    from desktop.errors import UserError

    try:
        _step(state, "Loading the interface…")
        _start_server(args, state, claimed)
        if state.closed.is_set():
            return
        _step(state, splash.OPENING)  # what the app's page shows under its splash, until it has painted
        if state.cover is not None:  # Qt shows an empty view until the new page draws: keep this picture
            state.cover.freeze()
        state.window.load_url(state.url)
    except UserError as exc:
        _show_error(state, str(exc), "")
    except Exception as exc:
        log.exception("Pipedesk could not start")
        _show_error(
            state, "Pipedesk could not start.", f"{type(exc).__name__}: {exc}\n\nLog: {logs.log_file()}"
        )


def _show_error(state: AppState, text: str, details: str) -> None:
    print(f"pipedesk: error: {text} {details}".strip(), file=sys.stderr, flush=True)
    if state.window is not None and not state.closed.is_set():
        try:
            state.window.run_js(f"showError({json.dumps(text)}, {json.dumps(details)})")
        except Exception:
            log.exception("Could not show the error in the window")


def _run_window(args: argparse.Namespace, state: AppState, claimed: instance.Instance) -> int:
    _prepare_qt()
    import webview

    from desktop.shell import qt_patches as webview_fixes

    webview.settings["ALLOW_DOWNLOADS"] = True  # Gradio's download buttons save files
    webview.settings["ALLOW_FILE_URLS"] = False
    gui = "qt" if sys.platform.startswith("linux") else None
    storage = paths.ensure(paths.data_dir() / "webview")
    screens = webview_fixes.patch_qt(storage) if gui == "qt" else _screens(webview)
    geometry = placement.fit(placement.saved(), placement.from_toolkit(screens))
    state.geometry.update(geometry)
    if gui == "qt":
        from desktop.shell import cover

        cover.listen_to_pages()
    window = webview.create_window(
        TITLE,
        html=splash.loading_page(),
        width=geometry["width"],
        height=geometry["height"],
        x=geometry.get("x"),
        y=geometry.get("y"),
        min_size=placement.MIN_SIZE,
        maximized=bool(geometry.get("maximized")),
        background_color=splash.BACKGROUND,
        text_select=True,
        zoomable=True,
    )
    window.expose(_page_shown(state))
    state.window = window
    state.close_window = window.destroy
    placement.track(window, state.geometry)

    def on_signal(number: int, _frame: Any) -> None:  # main thread, when Python next runs there
        state.request_stop(f"{signal.Signals(number).name} received")

    for number in STOP_SIGNALS:
        signal.signal(number, on_signal)
    if gui == "qt":  # it watches for a window destroyed from outside, a dead page, and signals
        guard = webview_fixes.WindowGuard(window, state.request_stop, STOP_SIGNALS)
        state.close_window = guard.request_close
        state.cover = cover.Cover(window)  # the splash drawn by Qt until a page has drawn it
    loader = threading.Thread(target=_load, args=(state, args, claimed), name="loader", daemon=True)

    def start_loader() -> None:  # once the window is on screen, so the heavy imports do not delay it
        if state.stop_reason is not None:  # a signal before the window was up
            state.request_stop(state.stop_reason)
        elif loader.ident is None:
            log.info("Window shown")
            loader.start()

    window.events.shown += start_loader
    icon = assets.path("icon.png")
    log.info("Opening the window (%s backend)", gui or "default")
    try:
        webview.start(
            gui=gui,
            private_mode=False,
            storage_path=str(storage),
            icon=str(icon) if icon.exists() else None,
        )
    finally:
        log.info("Window closed")
        state.stop()
        claimed.release()
    log.info("Pipedesk stopped cleanly (%s)", state.stop_reason or "the window was closed")
    _exit_now(0)
    return 0


def _screens(webview: Any) -> list[Any]:
    """The screens as pywebview sees them (backends other than Qt); none when it cannot say."""
    try:
        return list(webview.screens)
    except Exception:
        log.debug("Could not list the screens", exc_info=True)
        return []


def _page_shown(state: AppState) -> Callable[..., None]:
    """What the app's page calls (pywebview's JS API) once its splash is lifted and the app drawn."""

    def page_shown(how: str = "", _page_ms: int = 0) -> None:
        if not state.page_shown.is_set():
            state.page_shown.set()
            log.info("The app is on screen, %.1fs after the process started (%s)", _since_start(), how)
            _warm_up(state)

    return page_shown


def _since_start() -> float:
    """Seconds since this process started (as the system counts it: the double-click, not an import)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def _exit_now(code: int) -> None:
    """Exit at once once everything is stopped and saved.

    Tearing down QtWebEngine and torch at interpreter exit took 2.5 s on a 2-core
    machine (and the loader may still be importing torch if the window closed
    early); none of it holds anything of ours, so run the atexit handlers, flush,
    and leave.
    """
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(code)
