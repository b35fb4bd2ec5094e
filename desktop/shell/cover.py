"""A native picture over the window's page while the page underneath has nothing to show yet (Qt).

QtWebEngine shows an empty white view until a page has drawn its first frame: for about 0.3 s
when the window first appears, and again on every navigation to another origin (the loading
page to the app's page), measured under Xvfb on a busy 2-core machine. The cover is a plain Qt
widget laid over the web view, so the window never shows that:

* from the window's first frame, the splash drawn by Qt itself (:class:`Cover` builds it with the
  same words, colours and sizes as the page's), until the loading page says it has drawn;
* :meth:`Cover.freeze`, just before the app's address is opened: a picture of what the page shows
  now (the splash), until the app's page says it has drawn its first frame (the same splash).

Pages say so with a console message (:data:`desktop.shell.splash.DRAWN`), which Qt hands over at
once, before pywebview's JS bridge is there. If no page says so within :data:`LIFT_AFTER_S`, the
cover goes anyway: it never hides the page for good.

Threads: made on the main thread before the window opens; everything Qt runs on the GUI (main)
thread; :meth:`Cover.freeze` may be called from any other thread and returns once the cover is up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from desktop.shell import splash
from desktop.shell.qt_patches import logged

log = logging.getLogger(__name__)

#: The cover goes after this many seconds even if no page said it has drawn.
LIFT_AFTER_S = 15.0
#: Once a page said it has drawn, how often to look whether Qt shows that frame yet.
CHECK_EVERY_MS = 40

_listeners: list[Callable[[str], None]] = []


def _console_message(_page: Any, _level: Any, message: str, _line: int, _source: str) -> None:
    """``QWebEnginePage.javaScriptConsoleMessage`` of every pywebview page: tell the listeners."""
    for listener in list(_listeners):
        try:
            listener(message)
        except Exception:  # an exception escaping a Qt virtual aborts the process
            log.exception("A console listener failed")


def listen_to_pages() -> None:
    """Hand the console messages of pywebview's Qt pages to the covers (before a window is made)."""
    import webview.platforms.qt as qt

    qt.BrowserView.WebPage.javaScriptConsoleMessage = _console_message


class Cover:
    """The cover of one pywebview window (see the module docstring); made before ``webview.start``."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self._relay: Any = None
        self._widget: Any = None
        self._picture: Any = None
        self._up_since = 0.0
        self._frozen = threading.Event()
        self._keep: list[Any] = []
        window.events.before_show += self._attach
        _listeners.append(self._heard)

    # --- any thread ------------------------------------------------------------------------

    def freeze(self, timeout: float = 3.0) -> bool:
        """Cover the page with a picture of what it shows now; True once the cover is up."""
        if self._relay is None:
            return False
        self._frozen.clear()
        self._relay.freeze.emit()
        return self._frozen.wait(timeout)

    def _heard(self, message: str) -> None:
        if message == splash.DRAWN and self._relay is not None:
            self._relay.lift.emit()

    # --- the GUI thread ----------------------------------------------------------------------

    def _attach(self) -> None:
        """pywebview has built the window: lay the native splash over its web view."""
        from qtpy import QtCore

        view = self.window.native

        class Relay(QtCore.QObject):
            freeze = QtCore.Signal()
            lift = QtCore.Signal()

        class Follow(QtCore.QObject):  # keeps the cover over the web view as the window is resized
            def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
                if event.type() == QtCore.QEvent.Type.Resize and cover._widget is not None:
                    cover._widget.setGeometry(watched.centralWidget().geometry())
                return False

        cover = self
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self._relay = Relay()
        self._relay.freeze.connect(logged(self._freeze), queued)
        self._relay.lift.connect(logged(self._lift), queued)
        follow = Follow()
        view.installEventFilter(follow)
        self._widget = _native_splash(view)
        self._picture = self._widget.findChild(_qlabel(), "picture")
        self._keep.append(follow)
        self._show()

    def _show(self) -> None:
        from qtpy import QtCore

        self._widget.setGeometry(self.window.native.centralWidget().geometry())
        self._widget.show()
        self._widget.raise_()
        self._up_since = up_since = time.monotonic()
        QtCore.QTimer.singleShot(int(LIFT_AFTER_S * 1000), logged(lambda: self._lift_late(up_since)))

    def _freeze(self) -> None:
        self._picture.setPixmap(self._grab())
        self._widget.setCurrentIndex(1)
        self._show()
        self._frozen.set()

    def _lift(self) -> None:
        """Lift the cover once the web view under it shows a drawn page (not an empty view)."""
        if self._widget is None or not self._widget.isVisible():
            return
        if not self._view_drawn() and time.monotonic() - self._up_since < LIFT_AFTER_S:
            from qtpy import QtCore

            QtCore.QTimer.singleShot(CHECK_EVERY_MS, logged(self._lift))  # Qt has not shown the frame yet
            return
        self._widget.hide()
        log.debug("Cover lifted after %.2fs", time.monotonic() - self._up_since)

    def _view_drawn(self) -> bool:
        """True when the web view holds a picture that is not one flat colour (an empty view is)."""
        image = self._grab().toImage().scaled(16, 16)
        first = image.pixel(0, 0)
        return any(image.pixel(x, y) != first for x in range(16) for y in range(16))

    def _grab(self) -> Any:
        from qtpy import QtGui

        view = self.window.native.webview
        target = view.focusProxy() or view
        grab = target.grabFramebuffer() if hasattr(target, "grabFramebuffer") else target.grab()
        return QtGui.QPixmap.fromImage(grab) if isinstance(grab, QtGui.QImage) else grab

    def _lift_late(self, up_since: float) -> None:
        if self._widget.isVisible() and self._up_since == up_since:  # still the same cover
            log.warning("No page said it had drawn within %.0fs: showing it anyway", LIFT_AFTER_S)
            self._lift()


def _qlabel() -> Any:
    from qtpy import QtWidgets

    return QtWidgets.QLabel


def _native_splash(parent: Any) -> Any:
    """The splash as Qt widgets (the page's words, colours and sizes), and a place for a picture."""
    from qtpy import QtCore, QtGui, QtWidgets

    stack = QtWidgets.QStackedWidget(parent)
    page = QtWidgets.QWidget()
    page.setObjectName("splash")
    page.setAttribute(QtCore.Qt.WidgetAttribute.WA_StyledBackground, True)
    page.setStyleSheet(
        "#splash { background: qlineargradient(x1:0.33, y1:0, x2:0.67, y2:1, "
        f"stop:0 {splash.GRADIENT[0]}, stop:1 {splash.GRADIENT[1]}); }}"
        f"QLabel {{ color: {splash.TEXT}; font-size: 16px; background: transparent; }}"
    )
    column = QtWidgets.QVBoxLayout(page)
    column.setSpacing(0)
    column.addStretch(1)
    # Each line as high as the page's CSS makes it (line boxes and collapsed margins, in px).
    lines = [
        (f"Pipe<span style='color:{splash.ACCENT}'>desk</span>", "font-size: 35px; font-weight: 700;", 42, 7),
        (splash.TAGLINE, "", 24, 22),
        (None, "", 50, 16),
        ("Starting…", "font-weight: 600;", 24, 6),
        (splash.HINT, f"font-size: 15px; color: {splash.HINT_TEXT};", 24, 6),  # its bottom margin
    ]
    for text, style, height, gap in lines:
        label = QtWidgets.QLabel()
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setFixedHeight(height)
        if text is None:
            label.setPixmap(_ring(QtGui))
        else:
            label.setText(text)
            label.setStyleSheet(style)
        column.addWidget(label)
        column.addSpacing(gap)
    column.addStretch(1)
    picture = QtWidgets.QLabel()
    picture.setObjectName("picture")
    picture.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
    stack.addWidget(page)
    stack.addWidget(picture)
    return stack


def _ring(qtgui: Any) -> Any:
    """The page's spinner at rest: a 4 px ring, its top quarter in the accent colour."""
    size = 50
    ring = qtgui.QPixmap(size, size)
    ring.fill(qtgui.QColor(0, 0, 0, 0))
    painter = qtgui.QPainter(ring)
    painter.setRenderHint(qtgui.QPainter.RenderHint.Antialiasing)
    pen = qtgui.QPen(qtgui.QColor(splash.RING[0]), 4)
    painter.setPen(pen)
    painter.drawEllipse(2, 2, size - 4, size - 4)
    pen.setColor(qtgui.QColor(splash.RING[1]))
    painter.setPen(pen)
    painter.drawArc(2, 2, size - 4, size - 4, 45 * 16, 90 * 16)
    painter.end()
    return ring
