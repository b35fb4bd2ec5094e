"""The moving parts of a model download: byte counting, speed, cancel, disk space, reachability.

huggingface_hub downloads files on its own worker threads and reports bytes
through a ``tqdm_class``. :class:`Transfer` is the one object those threads
and the asking thread share: the workers add bytes (and stop with
:class:`DownloadCancelled` once ``cancel`` is set), the asking thread — the
Gradio worker that owns the progress bar, or the CLI's main thread — reads
:meth:`Transfer.describe` and forwards it to its ``progress`` callback. Gradio's
progress only works from the thread that runs the event, which is why the
workers never call ``progress`` themselves.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from desktop.errors import ModelError, UserError
from desktop.fmt import human_duration, human_size

T = TypeVar("T")

#: Kept free on top of a model's size, so a download never fills the disk to the last byte.
SPACE_MARGIN = 50 * 1024 * 1024
#: How long the reachability check waits for the model server before calling the computer offline.
CONNECT_TIMEOUT_S = 3.0
#: How often the asking thread refreshes its progress bar while a download runs.
POLL_S = 0.2


class DownloadCancelled(UserError):
    """The user cancelled a download (the Cancel button, or Ctrl+C in the terminal)."""


def free_bytes(folder: Path) -> int:
    """Free space on the disk that holds ``folder`` (or would hold it: the nearest existing parent)."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_space(folder: Path, needed: int, what: str) -> None:
    """Refuse (writing nothing) when ``needed`` bytes plus a margin do not fit next to ``folder``."""
    if needed <= 0:
        return
    free = free_bytes(folder)
    if free < needed + SPACE_MARGIN:
        raise ModelError(
            f"Not enough disk space for {what}: it needs {human_size(needed)} and only "
            f"{human_size(free)} is free in {folder}. Free some space, or choose another "
            "Models folder in the Models tab."
        )


def check_reachable(endpoint: str, what: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when the model server (or the proxy to it) cannot be reached.

    huggingface_hub would otherwise wait for its own, longer time-outs; a laptop
    with no network gets the offline message at once instead.
    """
    parts = urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(parts.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError:
        raise ModelError(offline_message(what)) from None


def offline_message(what: str) -> str:
    """The sentence for a model that is missing while the computer is offline."""
    return (
        f"{what} is not downloaded yet and this computer is offline: "
        "connect once, or import it from a folder."
    )


class Transfer:
    """Bytes received so far for one download, its speed and time left, and its cancel flag."""

    def __init__(self, total: int, description: str, cancel: threading.Event | None = None) -> None:
        self.total = total
        self.description = description
        self.cancel = cancel or threading.Event()
        self._lock = threading.Lock()
        self._bars: dict[int, int] = {}
        self._samples: deque[tuple[float, int]] = deque(maxlen=50)
        self.started = time.monotonic()

    @property
    def done(self) -> int:
        """Bytes written so far (huggingface_hub reports the same bytes on two bars: take the larger)."""
        with self._lock:
            return min(self.total, max(self._bars.values(), default=0)) if self.total else 0

    def add(self, bar: int, nbytes: int) -> None:
        """Called from download threads for every chunk; raises DownloadCancelled once cancelled."""
        if self.cancel.is_set():
            raise DownloadCancelled()
        with self._lock:
            self._bars[bar] = self._bars.get(bar, 0) + nbytes

    def speed(self) -> float | None:
        """Bytes per second over the last few seconds, or None before there is anything to measure."""
        now, done = time.monotonic(), self.done
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 5:
            self._samples.popleft()
        first_t, first_done = self._samples[0]
        if now - first_t < 0.3 or done <= first_done:
            elapsed = now - self.started
            return done / elapsed if done and elapsed > 0.3 else None
        return (done - first_done) / (now - first_t)

    def describe(self) -> str:
        """``'Downloading X · 1.2 of 268 MB · 4.1 MB/s · about 1 min left'``."""
        done = self.done
        parts = [self.description, f"{human_size(done)} of {human_size(self.total)}"]
        speed = self.speed()
        if speed:
            parts.append(f"{human_size(speed)}/s")
            if self.total > done:
                parts.append(f"{human_duration((self.total - done) / speed)} left")
        return " · ".join(parts)

    def tqdm_class(self) -> type:
        """A tqdm class for ``snapshot_download(tqdm_class=...)`` that feeds this transfer."""
        from tqdm.auto import tqdm

        transfer = self
        keys = itertools.count()  # one key per file bar of this transfer

        class TransferTqdm(tqdm):  # type: ignore[misc]
            """Counts bytes into the transfer; draws nothing (the caller shows progress)."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                self._counts_bytes = kwargs.get("unit") == "B"
                self._key = next(keys)

            def update(self, n: float | None = 1) -> None:
                if transfer.cancel.is_set():
                    raise DownloadCancelled()
                if self._counts_bytes and n:
                    transfer.add(self._key, int(n))

        return TransferTqdm


def run_reporting(
    work: Callable[[], T],
    transfer: Transfer,
    progress: Callable[[int, int, str], None] | None,
) -> T:
    """Run ``work`` on a helper thread while this thread reports progress; Ctrl+C cancels it.

    Returns what ``work`` returned or raises what it raised. On KeyboardInterrupt
    the transfer is cancelled, the helper is waited for (its next chunk stops
    it), and the interrupt is raised again.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the asking thread
            outcome["error"] = exc

    helper = threading.Thread(target=target, name="pipedesk-download", daemon=True)
    helper.start()
    last, shown = "", -1
    try:
        while helper.is_alive():
            helper.join(POLL_S)
            if progress and transfer.total:
                text = transfer.describe()
                if text != last:
                    shown, last = transfer.done, text
                    progress(shown, transfer.total, text)
    except BaseException:
        transfer.cancel.set()
        helper.join(30)
        raise
    if "error" in outcome:
        raise outcome["error"]
    if progress and transfer.total and shown != transfer.total:
        progress(transfer.total, transfer.total, transfer.describe())  # the bar always ends full
    return outcome["value"]


def remove_stale_parts(storage: Path, locks: Path) -> int:
    """Delete the ``*.incomplete`` files a crashed download left in ``storage/blobs``; returns how many.

    huggingface_hub writes each file to a temporary name unique to one process and
    never reuses it, so after a crash or a power cut it would stay forever. A part
    whose file lock (``locks/<etag>.lock``) another process holds is being written
    right now and is left alone.
    """
    from filelock import FileLock, Timeout

    removed = 0
    for part in (storage / "blobs").glob("*.incomplete"):
        lock = locks / f"{part.name.split('.')[0]}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(lock, timeout=0):
                part.unlink(missing_ok=True)
                removed += 1
        except (Timeout, OSError):
            continue
    return removed


def remove_tree(path: Path) -> None:
    """Delete a file, link or folder if it is there."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
