"""The visitors' lane: LAN visitors' work runs on one thread of lower CPU priority, and pauses
while the owner's runs.

On a laptop's few cores, the owner's request runs beside a visitors' batch in flight (on the
CPU; :mod:`desktop.engine.batcher`). Two things give the owner's pass the cores:

- the lane thread lowers its own priority once, when it starts, and torch's OpenMP workers,
  which it creates, inherit it: Linux ``nice`` +10 (the usual "background" step; a thread may
  always lower its priority, never raise it back, so the lane is one dedicated thread), Windows
  ``THREAD_PRIORITY_BELOW_NORMAL``; elsewhere (macOS) the lane runs at normal priority;
- the visitors' pass pauses at the next module of the model's layers while an owner's pass runs
  beside it (:func:`owner_first`, forward pre-hooks from :func:`make_pausable`): within one
  operation, milliseconds for a request-sized batch.

The same pause points end a file run's batch when its Stop is pressed (:func:`stoppable`): Stop
takes effect within one layer, not at the end of a batch that may take seconds.

Measured on 2 cores (benchmarks/README.md, ``load.py --owner``): beside 20 LAN visitors the
owner's median latency is its idle one and its p95 fell from 3.99x to 2.4x its idle p95; the
visitors' throughput did not drop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from desktop.errors import Stopped

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How much lower the visitors' lane runs than the rest of the app (Linux nice steps).
NICE_STEP = 10
_WINDOWS_BELOW_NORMAL = -1

_jobs: queue.SimpleQueue[tuple[Future, Callable[[], object]]] = queue.SimpleQueue()
_lane: threading.Thread | None = None
_lock = threading.Lock()
#: The owner's passes running beside the visitors' work now; the visitors' pauses waiting for them.
_owner = threading.Condition()
_owners_beside = 0
_paused = 0
#: Whether the calling thread's pass may pause for the owner's (set while it holds the device).
_mark = threading.local()


def lower_this_thread() -> bool:
    """Lower the calling thread's CPU priority (see the module doc); False where it cannot."""
    try:
        if sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE_STEP))
            return True
        if sys.platform == "win32":
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            return bool(kernel32.SetThreadPriority(kernel32.GetCurrentThread(), _WINDOWS_BELOW_NORMAL))
    except OSError as exc:  # a sandbox may refuse: the lane still works, at normal priority
        log.warning("The visitors' lane keeps normal priority: %s", exc)
    return False


def run_in_lane(call: Callable[[], T]) -> T:
    """``call()`` on the visitors' lane; the caller waits for it (exceptions come back here)."""
    global _lane
    if threading.current_thread() is _lane:  # already on it: waiting for itself would never end
        return call()
    with _lock:
        if _lane is None:  # a daemon thread: quitting the app never waits for a visitor's job
            _lane = threading.Thread(target=_work, name="visitors", daemon=True)
            _lane.start()
    future: Future = Future()
    _jobs.put((future, call))
    return future.result()  # type: ignore[no-any-return]


def _work() -> None:
    lower_this_thread()
    while True:
        future, call = _jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the caller's thread
            future.set_exception(exc)


# --- the owner first: the visitors' pass pauses between layers while the owner's runs ----------


@contextlib.contextmanager
def owner_first() -> Iterator[None]:
    """Around the owner's pass that runs beside the visitors' work (on the CPU): the visitors' pass
    stops at its next layer and goes on once the owner's is done, so the owner's gets the cores."""
    global _owners_beside
    with _owner:
        _owners_beside += 1
    try:
        yield
    finally:
        with _owner:
            _owners_beside -= 1
            _owner.notify_all()


def pausable(yes: bool = True) -> contextlib.AbstractContextManager[None]:
    """Around a pass that holds the device for someone other than the owner's request (a visitor's
    request, a file run): on the calling thread, the model's pause points wait while an owner's pass
    runs beside it (:func:`owner_first`)."""
    return _marked("on", yes)


def stoppable(stop: Callable[[], bool] | None) -> contextlib.AbstractContextManager[None]:
    """Around a pass whose results are dropped when ``stop()`` turns true (a file run's batch): on the
    calling thread, the model's pause points raise :class:`~desktop.errors.Stopped` once it does."""
    return _marked("stop", stop)


@contextlib.contextmanager
def _marked(name: str, value: Any) -> Iterator[None]:
    """Set the calling thread's mark ``name`` to ``value`` for the block (what was there comes back)."""
    before = getattr(_mark, name, None)
    setattr(_mark, name, value)
    try:
        yield
    finally:
        setattr(_mark, name, before)


def make_pausable(model: Any) -> None:
    """Let the visitors' passes through ``model`` pause at each of its layers (the modules of its
    ``ModuleList``s: a transformer's blocks). Once per model; any thread. A model that is no torch
    module (Whisper on CTranslate2, which computes on its own threads) cannot pause: it runs on."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return
    with _lock:
        if getattr(model, "_pipedesk_pausable", False):
            return
        # Each module of each layer (Linear etc.): a pause within milliseconds. A set: a layer that
        # holds a ModuleList of its own would otherwise hook its modules twice.
        parts = {
            part
            for module in model.modules()
            if isinstance(module, torch.nn.ModuleList)
            for layer in module
            for part in layer.modules()
        }
        for part in parts:
            part.register_forward_pre_hook(_pause_point)
        model._pipedesk_pausable = True


def paused() -> int:
    """How many visitors' passes wait for the owner's now (0 or 1; tests read it)."""
    with _owner:
        return _paused


def _pause_point(_module: Any, _inputs: Any) -> None:
    """A layer's forward pre-hook: in a pausable pass (:func:`pausable`), wait while an owner's pass
    runs beside it; in a stoppable one (:func:`stoppable`), end once Stop was pressed."""
    global _paused
    stop = getattr(_mark, "stop", None)
    if stop is not None and stop():
        raise Stopped
    if not _owners_beside or not getattr(_mark, "on", False):
        return
    with _owner:
        _paused += 1
        try:
            _owner.wait_for(lambda: _owners_beside == 0)
        finally:
            _paused -= 1
