"""Fixes for pywebview's Qt backend, applied on the main thread before the window opens.

* pywebview 6.2's Qt download handler calls ``download.setPath``, which Qt 6 no
  longer has (``QWebEngineDownloadRequest`` has ``setDownloadDirectory`` and
  ``setDownloadFileName``), so Gradio's download buttons silently saved nothing.
  :func:`patch_qt` installs a handler that asks where to save and accepts.
* The Qt backend reads the storage path when its module is first imported;
  importing it here (to patch it) would freeze it at the default
  ``~/.pywebview``, so the path is set explicitly.

:class:`WindowGuard` covers what Qt does not notice or pywebview does not handle
(measured under Xvfb with Qt 6.11):

* Another program destroys the window (``xdotool windowclose``, a crashing
  window manager): X sends ``DestroyNotify``, which Qt's xcb plugin ignores; the
  widget still thinks it is visible, no close event, no ``lastWindowClosed``, and
  the process served on with no window. The guard reads that event through a
  native event filter and ends the app as a normal close does.
* The page's renderer process dies (killed, out of memory, a crash): the window
  stays, blank white, and ``QWebEnginePage.renderProcessTerminated`` fires. The
  guard reloads the page; a renderer that keeps dying ends the app instead.
* SIGTERM and SIGINT: Python runs its handlers only when Python code runs, and
  Qt's event loop is C++; pywebview also replaces the SIGINT handler with one
  that quits Qt. The guard puts the app's handlers back and wakes the loop
  through ``signal.set_wakeup_fd`` and a ``QSocketNotifier``, so they run at once.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The page is reloaded after a renderer crash at most this many times a minute; then the app stops.
RELOADS_PER_MINUTE = 3
_XCB_DESTROY_NOTIFY = 17


def _save_download(self: Any, download: Any) -> None:
    """Ask where to save a download (Qt 6 API), then accept it; cancel when the user does."""
    from qtpy.QtWidgets import QFileDialog

    name = download.suggestedFileName() or download.downloadFileName() or "download"
    folder = download.downloadDirectory() or str(Path.home())
    title = self.localization.get("global.saveFile", "Save file")
    path, _ = QFileDialog.getSaveFileName(self, title, str(Path(folder) / name))
    if not path:
        download.cancel()
        return
    target = Path(path)
    download.setDownloadDirectory(str(target.parent))
    download.setDownloadFileName(target.name)
    download.accept()
    log.info("Downloading %s to %s", name, target)


def patch_qt(storage_path: Path) -> list[Any]:
    """Patch the Qt backend (see the module docstring); return the screens as Qt sees them."""
    import webview.platforms.qt as qt

    qt._profile_storage_path = str(storage_path)
    request = getattr(qt, "QWebEngineDownloadRequest", None)
    if request is None:
        try:
            from qtpy.QtWebEngineCore import QWebEngineDownloadRequest as request
        except ImportError:  # Qt 5: pywebview's own handler works there
            request = None
    if request is not None and not hasattr(request, "setPath"):
        qt.BrowserView.on_download_requested = _save_download
    try:
        return list(qt.get_screens())
    except Exception:
        log.debug("Could not list the screens", exc_info=True)
        return []


class WindowGuard:
    """Ends the app cleanly when its Qt window goes away without a close request, or on a stop signal.

    Made on the main thread before ``webview.start``; the handlers of ``signals``
    installed then are the ones kept. ``on_stop(reason)`` is called on the GUI
    (main) thread when the window is lost; it must lead to :meth:`request_close`.
    """

    def __init__(self, window: Any, on_stop: Callable[[str], None], signals: Iterable[int]) -> None:
        self.window = window
        self.on_stop = on_stop
        self.handlers = {number: signal.getsignal(number) for number in signals}
        self.crashes: deque[float] = deque()
        self._relay: Any = None
        self._keep: list[Any] = []  # Qt objects and sockets that must live as long as the window
        window.events.before_show += self._attach

    def request_close(self) -> None:
        """Close the window as a user would (any thread, signal handlers too): the GUI loop then ends."""
        if self._relay is not None:
            self._relay.close_requested.emit()

    def _attach(self) -> None:
        """pywebview has built the window (GUI thread): watch it."""
        from qtpy import QtCore, QtGui

        view = self.window.native

        class Relay(QtCore.QObject):
            close_requested = QtCore.Signal()

        self._relay = Relay()
        self._relay.close_requested.connect(logged(self._close), QtCore.Qt.ConnectionType.QueuedConnection)
        view.webview.page().renderProcessTerminated.connect(logged(self._renderer_ended))
        if QtGui.QGuiApplication.platformName() == "xcb":
            watcher = _destroy_watcher(view, self._lost)
            QtCore.QCoreApplication.instance().installNativeEventFilter(watcher)
            self._keep.append(watcher)
        self._wake_on_signals(QtCore)

    def _wake_on_signals(self, qtcore: Any) -> None:
        for number, handler in self.handlers.items():
            signal.signal(number, handler)  # undo pywebview's SIGINT handler
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        notifier = qtcore.QSocketNotifier(reader.fileno(), qtcore.QSocketNotifier.Type.Read)
        notifier.activated.connect(logged(lambda *_: _drain(reader)))  # the Python handler runs here
        self._keep += [reader, writer, notifier]

    def _close(self) -> None:
        import webview.platforms.qt as qt

        view = self.window.native
        if view is not None and qt.BrowserView.instances.get(self.window.uid) is view:
            view.close()  # pywebview's close: the closing event, then the GUI loop ends

    def _lost(self) -> None:
        self.on_stop("the window was destroyed by another program")

    def _renderer_ended(self, status: Any, code: int) -> None:
        if getattr(status, "name", "") == "NormalTerminationStatus":
            return
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > 60:
            self.crashes.popleft()
        if len(self.crashes) > RELOADS_PER_MINUTE:
            self.on_stop(f"the page's renderer process ended {len(self.crashes)} times in a minute")
            return
        log.warning(
            "The page's renderer process ended (%s, exit code %s): reloading the page",
            getattr(status, "name", status),
            code,
        )
        from qtpy import QtCore

        # Later, not inside this signal: reloading here made Qt report the same crash twice.
        QtCore.QTimer.singleShot(0, logged(self.window.native.webview.reload))


def logged(slot: Callable[..., None]) -> Callable[..., None]:
    """``slot``, logging its exceptions: one escaping a Qt slot aborts the process (PyQt's qFatal)."""

    def run(*args: Any) -> None:
        try:
            slot(*args)
        except Exception:
            log.exception("Qt slot %s failed", getattr(slot, "__name__", slot))

    return run


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(64):
            pass
    except BlockingIOError:
        pass


def _destroy_watcher(view: Any, on_destroyed: Callable[[], None]) -> Any:
    """A native event filter that calls ``on_destroyed`` when X destroys ``view``'s window (GUI thread)."""
    import ctypes

    from qtpy import QtCore

    created = QtCore.Qt.WidgetAttribute.WA_WState_Created

    class Watcher(QtCore.QAbstractNativeEventFilter):
        def nativeEventFilter(self, kind: Any, message: Any) -> tuple[bool, int]:  # noqa: N802 - Qt's name
            try:  # an exception escaping here aborts the process (PyQt turns it into qFatal)
                if bytes(kind) == b"xcb_generic_event_t":
                    self.check(message)
            except Exception:
                log.exception("Could not read an X event")
            return False, 0

        def check(self, message: Any) -> None:
            raw = message.asstring(12) if hasattr(message, "asstring") else ctypes.string_at(int(message), 12)
            if raw[0] & 0x7F != _XCB_DESTROY_NOTIFY:
                return
            # xcb_destroy_notify_event_t: type, pad, sequence (4 bytes), event, window (uint32 each)
            destroyed = int.from_bytes(raw[8:12], sys.byteorder)  # X sends in our byte order
            # A window Qt re-created itself (setWindowFlags) has a new id: its old one's end is no loss.
            # (winId() only while a native window exists: it would create one.)
            if view.testAttribute(created) and int(view.winId()) == destroyed:
                log.warning("The window (X id %#x) was destroyed by another program", destroyed)
                on_destroyed()

    return Watcher()
