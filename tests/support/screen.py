"""What a window on an X display shows, sampled fast: X's own picture of the screen and what it is.

``XScreen.grab`` asks the X server for the screen's pixels (``XGetImage``: about 15 ms for
1280x900 here, against 150-300 ms for ImageMagick's ``import``), so a start-up can be watched
frame by frame (:class:`Recorder`, on a thread of its own). :func:`kind_of` says what one frame of
the window shows: the splash (its background gradient and its accent-coloured title), the app
(the same picture as the app once it is there), or something a person should never see: an empty
or black window, Gradio's own "Loading…", a half-built page. Used by ``tests/test_window.py``
and ``benchmarks/startup.py``.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import time
from dataclasses import dataclass

from PIL import Image, ImageChops

from desktop.shell import splash


class _XImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
    ]


class XScreen:
    """One connection to an X display (24-bit TrueColor, as Xvfb's ``-screen 0 WxHx24``)."""

    def __init__(self, display: str) -> None:
        x11 = self._x11 = ctypes.CDLL("libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ctypes.c_ulong
        x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XGetImage.restype = ctypes.c_void_p
        x11.XGetImage.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_ulong,
            ctypes.c_int,
        ]
        x11.XFree.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self._display = x11.XOpenDisplay(display.encode())
        assert self._display, f"cannot open display {display}"
        self._root = x11.XDefaultRootWindow(self._display)
        self.size = (x11.XDisplayWidth(self._display, 0), x11.XDisplayHeight(self._display, 0))

    def grab(self) -> Image.Image:
        """The whole screen, now."""
        width, height = self.size
        pointer = self._x11.XGetImage(self._display, self._root, 0, 0, width, height, 0xFFFFFFFF, 2)
        assert pointer, "XGetImage failed"
        image = ctypes.cast(pointer, ctypes.POINTER(_XImage)).contents
        try:
            data = ctypes.string_at(image.data, image.bytes_per_line * image.height)
            return Image.frombuffer(
                "RGBX", (width, height), data, "raw", "BGRX", image.bytes_per_line, 1
            ).convert("RGB")
        finally:
            self._x11.XFree(image.data)
            self._x11.XFree(pointer)

    def close(self) -> None:
        if self._display:
            self._x11.XCloseDisplay(self._display)
            self._display = None


@dataclass
class Frame:
    """A picture of the screen that differs from the one before, and when it was taken."""

    at: float  # seconds since the recorder started
    image: Image.Image


class Recorder:
    """Grabs the screen every ``interval`` seconds on a thread and keeps each picture that changed."""

    def __init__(self, display: str, interval: float = 0.03) -> None:
        self.display = display
        self.interval = interval
        self.frames: list[Frame] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        screen = XScreen(self.display)
        last = b""
        try:
            while not self._stop.is_set():
                image = screen.grab()
                digest = hashlib.md5(image.tobytes()).digest()
                if digest != last:
                    self.frames.append(Frame(time.monotonic() - self.started, image))
                    last = digest
                self._stop.wait(self.interval)
        finally:
            screen.close()

    def stop(self) -> list[Frame]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.frames


def _hex(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def _share(image: Image.Image, low: tuple[int, ...], high: tuple[int, ...]) -> float:
    """The share of ``image``'s pixels whose colour lies between ``low`` and ``high`` (per channel)."""
    bands = [
        band.point(lambda v, lo=lo, hi=hi: 255 if lo <= v <= hi else 0)
        for band, lo, hi in zip(image.split(), low, high, strict=True)
    ]
    inside = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    return inside.histogram()[255] / (image.width * image.height)


def is_splash(image: Image.Image) -> bool:
    """True when ``image`` (the window) shows the splash: mostly its background gradient, and its
    title's accent colour in the middle."""
    low, high = (_hex(c) for c in splash.GRADIENT[::-1])
    background = _share(image, tuple(v - 3 for v in low), tuple(v + 3 for v in high))
    accent = _hex(splash.ACCENT)
    title = _share(image, tuple(v - 12 for v in accent), tuple(v + 12 for v in accent))
    return background > 0.85 and title * image.width * image.height > 100


def difference(a: Image.Image, b: Image.Image) -> float:
    """The share of pixels that differ between two pictures of the same size (by more than 2 levels
    in a channel: a white panel on Gradio's near-white background counts)."""
    red, green, blue = ImageChops.difference(a, b).split()
    changed = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v > 2 else 0)
    return changed.histogram()[255] / (a.width * a.height)


def kind_of(image: Image.Image, app: Image.Image) -> str:
    """What the window shows in ``image``: "splash", "app" (within 5% of the pixels of ``app``, the
    window once the app is there), "black", "blank" (one colour, or nearly), or "other"."""
    colours = image.getcolors(maxcolors=1 << 24)
    top = max(count for count, _ in colours) / (image.width * image.height)
    if len(colours) < 50 or top > 0.98:
        return "black" if max(colours)[1] == (0, 0, 0) else "blank"
    if is_splash(image):
        return "splash"
    if difference(image, app) < 0.05:
        return "app"
    return "other"
