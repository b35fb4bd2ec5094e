"""The engine process's side of :mod:`desktop.engine.process`: an in-process engine behind a pipe.

:func:`main` runs in the spawned child: it sets up logging, warms up (imports torch and
transformers, chooses the device) and then reads the front's messages. Each request and file run
runs on a thread of its own, so requests that arrive together still share batches
(:mod:`desktop.engine.batcher`) and the one scheduler orders them. Replies go back through one
lock-guarded pipe; after each request the status line's values follow.

Threads: the main thread reads; one thread per request or file run; the warm-up thread.
"""

from __future__ import annotations

import logging
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def main(
    conn: Any,
    device: str | None,
    models_root: str | None,
    bundle: str | None = None,
    warm: bool = True,
    read_only: bool = False,
    preload: bool = False,
) -> None:
    """The child's entry point (spawned: importable, picklable arguments only). ``bundle``: the
    packaged app's folder the front sees (``sys._MEIPASS``), for the models bundled in it."""
    if bundle and not getattr(sys, "_MEIPASS", None):
        sys._MEIPASS = bundle  # type: ignore[attr-defined]
    from desktop import logs

    logs.setup()
    from desktop.engine.local import InProcessEngine
    from desktop.engine.runtime import Runtime
    from desktop.models.store import ModelStore

    store = ModelStore(Path(models_root) if models_root else None, read_only=read_only)
    runtime = Runtime(device=device, store=store)
    Child(conn, runtime, InProcessEngine(runtime), preload).serve(warm)


class Child:
    """Reads requests from ``conn`` and answers them with ``engine``; see the module doc."""

    def __init__(self, conn: Any, runtime: Any, engine: Any, preload: bool = False) -> None:
        self.conn, self.runtime, self.engine = conn, runtime, engine
        self.preload = preload  # warming up loads the owner's last model too (Runtime.preload_last)
        self._send_lock = threading.Lock()
        self._stops: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._warming = False

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def serve(self, warm: bool = True) -> None:
        """Answer the front until it goes; ``warm``: import torch and choose the device now (else when
        the front says ``warm``, or when the first request needs them)."""
        if warm:
            self._warm_up_soon()
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the front has gone: so does the engine
                return
            kind = message[0]
            if kind == "quit":
                return
            if kind == "warm":
                self._warm_up_soon()
                continue
            if kind == "cancel":
                with self._lock:
                    stop = self._stops.get(message[1])
                if stop is not None:
                    stop.set()
                continue
            handler = {"run": self._run, "file": self._file, "device": self._answer, "devices": self._answer}
            if kind in handler:
                number = message[1]
                with self._lock:
                    self._stops[number] = threading.Event()
                threading.Thread(
                    target=handler[kind], args=message, name=f"{kind}-{number}", daemon=True
                ).start()

    def _warm_up_soon(self) -> None:
        if not self._warming:
            self._warming = True
            threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.runtime.warm_up(self.preload)
        except Exception:
            log.exception("Warming up failed; the first request will say why")
        self._status()

    def _status(self) -> None:
        try:
            self.send(("status", 0, self.runtime.status))
        except OSError:
            pass

    def _done(self, number: int) -> None:
        from desktop.engine import whisper

        with self._lock:
            stop = self._stops.pop(number, None)
        if stop is not None and stop.is_set() and whisper.computing_after_stop():
            # Stopped, but Whisper's engine decodes the dropped batch on: the front may end this
            # process so the CPU is free at once (ProcessEngine._abandoned).
            self.send(("abandoned", number))

    def _fail(self, number: int, exc: BaseException) -> None:
        from desktop.errors import UserError

        if not isinstance(exc, UserError):
            log.exception("Request failed in the engine", exc_info=exc)
        try:
            pickle.dumps(exc)
        except Exception:  # an exception that cannot cross: its words do
            exc = RuntimeError((str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
        self.send(("error", number, exc))

    def _progress(self, number: int) -> Any:
        def report(done: int, total: int, words: str, unit: str = "bytes") -> None:
            self.send(("progress", number, done, total, words, unit))

        return report

    def _run(
        self, _kind: str, number: int, task: str, args: tuple, who: Any, stream: bool, wants: tuple
    ) -> None:
        from desktop.engine.client import Request

        with self._lock:
            stop = self._stops[number]
        progress = self._progress(number) if wants[0] else None
        request = Request(task, tuple(args), who, progress, stop.is_set)
        try:
            if stream:
                last = None
                for result in self.engine.stream(request):
                    if last is not None:
                        self.send(("partial", number, last))
                    last = result
                self.send(("result", number, last))
            else:
                self.send(("result", number, self.engine.predict(request)))
        except BaseException as exc:
            self._fail(number, exc)
        finally:
            self._done(number)
            self._status()

    def _file(
        self, _kind: str, number: int, task: str, texts: list, model: Any, who: Any, settings: dict
    ) -> None:
        from desktop.engine.filerun import RunState

        with self._lock:
            stop = self._stops[number]
        try:
            run = self.engine.run_file(
                task, texts, model, who, cancel=stop, load_progress=self._progress(number), **settings
            )
            self.send(("ready", number, run.model, list(run.columns)))
            for event in run:
                self.send(("event", number, event))
                if event.state is not RunState.RUNNING:
                    break
        except BaseException as exc:
            self._fail(number, exc)
        finally:
            self._done(number)
            self._status()

    def _answer(self, kind: str, number: int) -> None:
        try:
            value = self.engine.device() if kind == "device" else self.engine.devices()
            self.send(("answer", number, value))
        except BaseException as exc:
            self._fail(number, exc)
        finally:
            self._done(number)
            self._status()
