"""Where the window opens and how big: remembered between launches, always with its title bar on a screen.

The window opens at the size and place it had when it was last closed, as long as that still
fits the screens there are now: a saved place whose title bar would be on no screen (a monitor
that was unplugged, a saved size taller than this laptop's screen) is not restored, and the
window opens centred instead. The first time, it takes :data:`PREFERRED_SIZE` or less: the
whole window, title bar included, fits a 1366x768 laptop screen above its taskbar.

Screens come from the window toolkit (:func:`from_toolkit`, main thread, before the window
opens); the rest is pure and runs on any thread. ``track`` keeps the geometry up to date from
the window's events (GUI or pywebview's event threads) and saves it when the window closes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from desktop import settings

log = logging.getLogger(__name__)

#: The size a first window asks for; smaller where the screen is smaller.
PREFERRED_SIZE = (1200, 860)
MIN_SIZE = (640, 480)
MAX_SIZE = 10_000
#: Room for the title bar (and frame) a desktop adds around the window's page.
TITLE_BAR = 40
#: Room for a taskbar or dock where the system does not say how much of a screen windows may use.
TASKBAR = 48
#: The part of the title bar that must be on a screen to grab it and move the window.
GRAB = 120
#: The keys of a geometry that are saved in the settings.
SAVED_KEYS = ("width", "height", "x", "y", "maximized")


@dataclass(frozen=True)
class Screen:
    """One monitor: its whole rectangle, and the part windows may use when the system says."""

    x: int
    y: int
    width: int
    height: int
    work: tuple[int, int, int, int] | None = None  # x, y, width, height without panels and taskbars

    def usable(self) -> tuple[int, int, int, int]:
        """Where a window may go: the work area, or the screen less room for a taskbar at the bottom."""
        whole = (self.x, self.y, self.width, self.height)
        if self.work is not None and self.work != whole and self.work[2] > 0 and self.work[3] > 0:
            return self.work
        return (self.x, self.y, self.width, self.height - TASKBAR)


def from_toolkit(screens: list[Any]) -> list[Screen]:
    """pywebview's screens as :class:`Screen` (the work area too, where Qt says what it is)."""
    found = []
    for screen in screens:
        work = None
        frame = getattr(screen, "frame", None)
        if frame is not None and hasattr(frame, "availableGeometry"):  # Qt's QScreen
            area = frame.availableGeometry()
            work = (area.x(), area.y(), area.width(), area.height())
        try:
            found.append(Screen(int(screen.x), int(screen.y), int(screen.width), int(screen.height), work))
        except (AttributeError, TypeError, ValueError):
            log.debug("A screen without a usable size: %r", screen)
    return [s for s in found if s.width > 0 and s.height > 0]


def saved() -> dict[str, int]:
    """The geometry saved when the window last closed: sizes within bounds, positions as given."""
    window = settings.load().window
    if not isinstance(window, dict):  # never saved, or not what this version writes
        window = {}
    geometry: dict[str, int] = {}
    for key, low in (("width", MIN_SIZE[0]), ("height", MIN_SIZE[1])):
        value = window.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            geometry[key] = min(max(value, low), MAX_SIZE)
    if all(isinstance(window.get(k), int) and not isinstance(window.get(k), bool) for k in ("x", "y")):
        geometry.update(x=window["x"], y=window["y"])
    if window.get("maximized"):
        geometry["maximized"] = 1
    return geometry


def _title_bar_on(geometry: dict[str, int], screen: Screen) -> bool:
    """True when enough of the window's title bar is on ``screen`` to grab it."""
    x, y, width = geometry["x"], geometry["y"], geometry.get("width", PREFERRED_SIZE[0])
    left, top, area_width, area_height = screen.usable()
    if not (top <= y and y + TITLE_BAR <= top + area_height):
        return False
    overlap = min(x + width, left + area_width) - max(x, left)
    return overlap >= min(GRAB, width)


def _fit_size(geometry: dict[str, int], screen: Screen) -> tuple[int, int]:
    _left, _top, area_width, area_height = screen.usable()
    width = min(geometry.get("width", PREFERRED_SIZE[0]), area_width)
    height = min(geometry.get("height", PREFERRED_SIZE[1]), area_height - TITLE_BAR)
    return max(width, MIN_SIZE[0]), max(height, MIN_SIZE[1])


def fit(geometry: dict[str, int], screens: list[Screen]) -> dict[str, int]:
    """``geometry`` (saved, or empty the first time) made to fit ``screens`` (the first is the
    primary): a saved place is kept only while its title bar is on a screen, and the size then
    fits that screen; otherwise the window is centred on the primary screen at a size that fits
    it. With no screens known, the saved geometry (or the preferred size) as it is."""
    fitted = {k: v for k, v in geometry.items() if k == "maximized"}
    if not screens:
        fitted.update({k: v for k, v in geometry.items() if k in ("x", "y")})
        fitted["width"] = geometry.get("width", PREFERRED_SIZE[0])
        fitted["height"] = geometry.get("height", PREFERRED_SIZE[1])
        return fitted
    if "x" in geometry and "y" in geometry:
        for screen in screens:
            if _title_bar_on(geometry, screen):
                fitted["width"], fitted["height"] = _fit_size(geometry, screen)
                fitted.update(x=geometry["x"], y=geometry["y"])
                return fitted
        log.info(
            "The saved window position %s,%s is on no screen: centring the window",
            geometry["x"],
            geometry["y"],
        )
    primary = screens[0]
    width, height = _fit_size(geometry, primary)
    left, top, area_width, area_height = primary.usable()
    # Relative to the primary screen, as pywebview places windows.
    fitted.update(
        width=width,
        height=height,
        x=left - primary.x + max(0, (area_width - width) // 2),
        y=top - primary.y + max(0, (area_height - height - TITLE_BAR) // 2),
    )
    return fitted


def save(geometry: dict[str, int]) -> None:
    """Remember ``geometry`` for the next launch (the window is closing)."""
    keep = {k: v for k, v in geometry.items() if k in SAVED_KEYS}
    try:
        settings.update(window=keep)
        log.info("Window geometry saved: %s", keep)
    except OSError:
        log.exception("Could not save the window geometry")


def track(window: Any, geometry: dict[str, int]) -> None:
    """Keep ``geometry`` up to date from ``window``'s events, and save it when the window closes."""

    def moved(x: int, y: int) -> None:
        if not geometry.get("maximized") and not geometry.get("minimized"):
            geometry.update(x=int(x), y=int(y))

    def resized(width: int, height: int) -> None:
        if not geometry.get("maximized") and not geometry.get("minimized"):
            geometry.update(width=int(width), height=int(height))

    def flag(name: str, value: int) -> Any:
        def handler(*_: Any) -> None:
            geometry[name] = value
            if name == "maximized" or not value:
                geometry["minimized"] = 0
            if name == "restored":
                geometry["maximized"] = geometry["minimized"] = 0

        return handler

    window.events.moved += moved
    window.events.resized += resized
    window.events.maximized += flag("maximized", 1)
    window.events.minimized += flag("minimized", 1)
    window.events.restored += flag("restored", 0)
    window.events.closing += lambda: save(geometry)
