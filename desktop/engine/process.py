"""The engine in a process of its own: a model that crashes never takes the window with it.

:class:`ProcessEngine` is the front's side of :class:`desktop.engine.client.Engine` for the window
and ``pipedesk serve``: it starts a child process (spawned, so it works frozen too) that imports
torch and transformers while the front builds its page, and runs every request and file run
there (:mod:`desktop.engine.child`). What crosses the pipe is data: requests (a task's arguments,
files as paths), cancellations, progress, partial and finished results, file runs' events, the
status line, errors (UserError keeps its sentence). The front never imports torch.

A crash is a sentence, not an exit: when the child dies (killed, out of memory, a native fault),
every request in flight ends with a sentence saying so, a new child starts at once, and the next
request is answered by it; a file run in flight goes on in the new child from the rows it had not
finished (no row lost, none done twice). Unloading models ends the child and starts a fresh one, so
their memory goes back to the operating system.

Threads: any caller (Gradio's workers, the API's, the Batch tab's run) blocks on its own queue;
one reader thread per child hands the child's messages to them.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from desktop.engine.client import Engine, Request, Status
from desktop.engine.device import check_device_name
from desktop.engine.process_runs import POLL_S, EngineStopped, FileRun, error_of
from desktop.engine.who import Who
from desktop.models.store import ModelStore
from desktop.tasks.spec import Result

log = logging.getLogger(__name__)

#: How often the idle watcher looks (at most).
IDLE_CHECK_S = 15.0
#: A child that dies this soon after starting, this many times in a row, is not started again.
QUICK_DEATH_S, MAX_QUICK_DEATHS = 10.0, 3


class ProcessEngine(Engine):
    """Runs the engine in a child process and restarts it when it dies; see the module doc."""

    def __init__(
        self,
        device: str | None = None,
        store: ModelStore | None = None,
        idle_limit_s: Callable[[], float] | None = None,
        warm: bool = True,
        preload: bool = False,
    ) -> None:
        self._asked = device
        self.store = store or ModelStore()
        self._status = Status(device=check_device_name(device), dtype="", engine="starting")
        self._lock = threading.Lock()  # the child, its pipe and the requests waiting on it
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.SimpleQueue[tuple[Any, ...]]] = {}
        self._process: Any = None
        self._conn: Any = None
        self._started_at = 0.0
        self._quick_deaths = 0
        self._closed = False
        self._deliberate: Any = None  # the child ended on purpose (unloading)
        self._stopped: set[int] = set()  # requests whose Stop was passed on
        self.generation = 0  # children started so far (tests read it)
        self.last_stop = ""  # why the last child ended, in words
        self._idle_limit_s = idle_limit_s or _idle_limit_from_settings
        self._warm = warm  # warm up at once (else at warm_up(); a restarted engine always does)
        self._preload = preload  # the first engine loads the owner's last model as it warms up
        self._cold_next = False  # the next engine waits for a request to import torch (after a Stop)
        self._last_used = time.monotonic()
        atexit.register(self.close)  # before multiprocessing ends its children: no restart then
        self.start()
        threading.Thread(target=self._watch_idle, name="engine-idle", daemon=True).start()

    # --- the child --------------------------------------------------------------------------

    def start(self) -> None:
        """Start a child (it imports torch and chooses the device at once)."""
        from desktop.engine import child

        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=child.main,
            # The same bundle as the front (a packaged app's own models; set already when frozen).
            args=(
                theirs,
                self._asked,
                str(root) if (root := self.store.fixed_root) else None,
                _bundle(),
                (self._warm or self.generation > 0) and not self._cold_next,
                self.store.read_only,
                # Not after a crash or Free memory: a restarted engine loads models when asked.
                self._preload and self.generation == 0,
            ),
            name="pipedesk-engine",
            daemon=True,
        )
        process.start()
        theirs.close()
        with self._lock:
            self._cold_next = False
            self._process, self._conn = process, mine
            self._started_at = time.monotonic()
            self.generation += 1
        threading.Thread(target=self._read, args=(process, mine), name="engine-reader", daemon=True).start()
        log.info("Engine process %d started", process.pid)

    @property
    def pid(self) -> int | None:
        """The engine process's id (tests, the log)."""
        with self._lock:
            return self._process.pid if self._process is not None else None

    def restart(self) -> None:
        """End the child and start a fresh one: every model's memory goes back to the system."""
        with self._lock:
            process, generation = self._process, self.generation
            self._deliberate = process
        if process is None:
            return
        process.kill()
        process.join(10)
        # The reader sees the pipe close and starts the next child (see _died): wait for it.
        deadline = time.monotonic() + 30
        while self.generation == generation and time.monotonic() < deadline:
            time.sleep(0.02)

    def _abandoned(self, process: Any, number: int) -> None:
        """Stop dropped a batch that the engine cannot interrupt (Whisper's decoding in CTranslate2):
        unless someone else's request runs there, end the engine so the CPU is free at once, and
        start the next one cold (it imports torch and loads models when a request needs them)."""
        with self._lock:
            others = [key for key in self._waiting if key != number]
            if others or self._process is not process or self._closed:
                return
            self._deliberate, self._cold_next = process, True
        log.info("Ending the engine: Stop left Whisper decoding a dropped batch")
        process.kill()

    def close(self) -> None:
        """End the child for good (the app is quitting)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            process, conn = self._process, self._conn
        if process is not None:
            try:
                self._send(("quit",))
            except OSError:
                pass
            process.join(3)
            if process.is_alive():
                process.kill()
        if conn is not None:
            conn.close()

    def _watch_idle(self) -> None:
        """Models left unused for the set time leave memory: a fresh engine gives it all back."""
        while not self._closed:
            limit = self._idle_limit_s()
            time.sleep(min(IDLE_CHECK_S, limit) if limit > 0 else IDLE_CHECK_S)
            with self._lock:
                busy = bool(self._waiting)
            idle = time.monotonic() - self._last_used
            if limit > 0 and not busy and self._status.loaded and idle >= limit and not self._closed:
                log.info("Unloading the models after %.0f s unused", idle)
                self.restart()

    def _read(self, process: Any, conn: Any) -> None:
        """The reader thread of one child: hands its messages to the callers waiting for them."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that cannot be read: the child is in trouble
                log.exception("Unreadable message from the engine process")
                break
            kind, number = message[0], message[1]
            if kind == "status":
                self._status = message[2]
                continue
            if kind == "abandoned":
                self._abandoned(process, number)
                continue
            with self._lock:
                waiting = self._waiting.get(number)
            if waiting is not None:
                waiting.put(message)
        self._died(process)

    def _died(self, process: Any) -> None:
        if process.is_alive():  # its pipe broke but it runs on (an unreadable message): end it
            process.kill()
        process.join(5)
        why = _why(process.exitcode)
        with self._lock:
            if self._process is not process:
                return
            waiting, self._waiting = self._waiting, {}
            self._process = self._conn = None
            lived = time.monotonic() - self._started_at
            if self._deliberate is process:  # unloading, or Stop (see _abandoned): not a failure
                why, state = "its models were unloaded", "starting"
            else:
                self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH_S else 0
                state = "stopped" if self._quick_deaths >= MAX_QUICK_DEATHS else "restarting"
            # Until the next one is up (its first status, once warm, says "running").
            self._status = Status(device=self._status.device, dtype="", engine=state)
        self.last_stop = why
        if self._closed:
            return
        log.warning("The engine process %s ended: %s", process.pid, why)
        sentence = (
            f"The engine that runs the models stopped: {why}. Pipedesk is starting it again; "
            "run this once more in a moment."
        )
        for box in waiting.values():
            box.put(("died", 0, sentence))
        if self._quick_deaths >= MAX_QUICK_DEATHS:
            log.error("The engine process keeps ending right after it starts; not starting it again")
            return
        self.start()

    # --- talking to it ----------------------------------------------------------------------

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            conn = self._conn
        if conn is None:
            raise EngineStopped(self._not_running())
        with self._send_lock:
            conn.send(message)

    def _not_running(self) -> str:
        if self._quick_deaths >= MAX_QUICK_DEATHS:
            return (
                "The engine that runs the models cannot start on this computer "
                f"({self.last_stop}); the log file says why."
            )
        return "The engine that runs the models is starting again; run this once more in a moment."

    def _open(self) -> tuple[int, queue.SimpleQueue[tuple[Any, ...]]]:
        number = next(self._ids)
        self._last_used = time.monotonic()
        box: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        with self._lock:
            self._waiting[number] = box
        return number, box

    def _close(self, number: int) -> None:
        self._last_used = time.monotonic()
        with self._lock:
            self._waiting.pop(number, None)
        self._stopped.discard(number)

    def _ask(self, message: tuple[Any, ...]) -> tuple[int, queue.SimpleQueue[tuple[Any, ...]]]:
        number, box = self._open()
        try:
            self._send((message[0], number, *message[1:]))
        except (OSError, EngineStopped):
            self._close(number)
            raise EngineStopped(self._not_running()) from None
        return number, box

    def _next(
        self, number: int, box: queue.SimpleQueue[tuple[Any, ...]], request: Request
    ) -> tuple[Any, ...]:
        """The next message for ``number`` that is not progress (progress is reported on the way);
        a Stop pressed meanwhile is passed on to the child once."""
        while True:
            if request.stop is not None and number not in self._stopped and request.stop():
                self._stopped.add(number)
                self._cancel(number)
            try:
                message = box.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if message[0] == "progress":
                if request.progress is not None:
                    done, total, words, unit = message[2:]
                    request.progress(done, total, words, unit=unit)
                continue
            return message

    def _cancel(self, number: int) -> None:
        try:
            self._send(("cancel", number))
        except (OSError, EngineStopped):
            pass

    # --- the interface ----------------------------------------------------------------------

    def predict(self, request: Request) -> Result:
        results = list(self._run(request, stream=False))  # one: the finished result
        return results[-1]

    def stream(self, request: Request) -> Iterator[Result]:
        return self._run(request, stream=True)

    def _run(self, request: Request, stream: bool) -> Iterator[Result]:
        wants = (request.progress is not None, request.stop is not None)
        number, box = self._ask(("run", request.task, request.args, request.who, stream, wants))
        finished = False
        try:
            while True:
                message = self._next(number, box, request)
                kind = message[0]
                if kind == "partial":
                    yield message[2]
                elif kind == "result":
                    finished = True
                    yield message[2]
                    return
                else:
                    finished = True
                    raise error_of(message)
        finally:
            if not finished:  # the caller went away (an abandoned stream): the child stops too
                self._cancel(number)
            self._close(number)

    def run_file(
        self, task: str, texts: Sequence[Any], model: str | None, who: Who, **settings: Any
    ) -> FileRun:
        return FileRun(self, task, texts, model, who, settings)

    def status(self) -> Status:
        return self._status

    @property
    def chosen_device(self) -> str | None:
        return self._status.device if self._status.dtype else None

    def device(self) -> str:
        return self._call("device")

    def devices(self) -> tuple[list[tuple[str, str]], str]:
        return self._call("devices")

    def _call(self, what: str) -> Any:
        number, box = self._ask((what,))
        try:
            message = self._next(number, box, Request("", ()))
        finally:
            self._close(number)
        if message[0] != "answer":
            raise error_of(message)
        return message[2]

    def warm_up(self) -> threading.Thread | None:
        self._warm = True
        try:
            self._send(("warm",))
        except (OSError, EngineStopped):
            pass  # a new engine warms up by itself
        return None

    def unload(self) -> None:
        self.restart()  # a fresh engine: every byte the models and torch's caches held goes back


def _bundle() -> str | None:
    return getattr(sys, "_MEIPASS", None)


def _idle_limit_from_settings() -> float:
    """Seconds of no use after which models leave memory (Settings; 0: never)."""
    from desktop import settings

    return max(0, settings.load().unload_after_min) * 60.0


def _why(code: int | None) -> str:
    """Why a process with exit code ``code`` ended, in words."""
    if code is not None and code < 0:
        if -code == signal.SIGKILL:
            return "it was stopped by the system (often: it ran out of memory)"
        try:
            return f"it crashed ({signal.Signals(-code).name})"
        except ValueError:
            return "it crashed"
    return f"it ended (exit code {code})"
