"""One step ahead: a file run's next window prepared on a helper thread while the device works on
this one (:mod:`desktop.engine.filerun`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


def prefetched(make: Callable[[Any], Any], chunks: list[Any]) -> Iterator[Any]:
    """``make(chunk)`` for each chunk, one step ahead on a helper thread (preparing while the GPU works)."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        for chunk in chunks:
            if stop.is_set():
                return
            try:
                item = (True, make(chunk))
            except BaseException as exc:  # handed to the consumer
                item = (False, exc)
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    thread = threading.Thread(target=produce, name="batch-prepare", daemon=True)
    thread.start()
    try:
        for _ in chunks:
            ok, value = ready.get()
            if not ok:
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)
