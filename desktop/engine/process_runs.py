"""A file run in the engine process, as the front iterates it (:class:`FileRun`).

The rows cross once; events of progress and finished rows come back as the engine makes them.
When the engine dies mid-run, the run goes on in the next engine from the rows not yet finished:
no row is lost and none is done twice (the rows already back are skipped).

Threads: the caller's (the Batch tab's handler); messages arrive through the engine's reader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from desktop.engine.client import Request
from desktop.engine.filerun import BatchProgress, RunState
from desktop.engine.who import Who
from desktop.errors import UserError
from desktop.tasks import get

log = logging.getLogger(__name__)

#: How often a waiting caller looks at its Stop (and a file run at its cancel event).
POLL_S = 0.1

#: How many times one file run goes on in a new engine before it gives up.
MAX_RESUMES = 2


class EngineStopped(UserError):
    """The engine process ended while this request ran (the app itself is fine)."""


class FileRun:
    """A file run in the engine process, iterated in front like :class:`~desktop.engine.filerun.BatchRun`
    (``model``, ``columns``, ``spec``, ``cancel``; events of progress and rows). When the engine dies
    mid-run, the run goes on in the next engine from the rows not yet finished."""

    def __init__(
        self,
        engine: Any,  # the ProcessEngine that runs it
        task: str,
        texts: Sequence[Any],
        model: str | None,
        who: Who,
        settings: dict[str, Any],
    ) -> None:
        self.engine, self.task, self.who = engine, task, who
        self.spec = get(task)
        self.texts = list(texts)
        self.model_asked = model
        self.cancel: threading.Event = settings.pop("cancel", None) or threading.Event()
        self._progress = settings.pop("load_progress", None)
        self.settings = settings
        self.done: set[int] = set(settings.pop("skip", ()))
        self.resumed = 0
        self.model, self.columns = self._begin()

    def _request(self) -> Request:
        return Request(self.task, (), self.who, self._progress, self.cancel.is_set)

    def _begin(self) -> tuple[str, tuple[str, ...]]:
        """Start the run in the engine and wait for its model to load (refusals are raised here)."""
        self.number, self.box = self.engine._ask(
            (
                "file",
                self.task,
                self.texts,
                self.model_asked,
                self.who,
                {**self.settings, "skip": sorted(self.done)},
            )
        )
        message = self.engine._next(self.number, self.box, self._request())
        if message[0] != "ready":
            self.engine._close(self.number)
            raise error_of(message)
        return message[2], tuple(message[3])

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                message = self.engine._next(self.number, self.box, self._request())
                kind = message[0]
                if kind == "event":
                    event = message[2]
                    self.done.update(row for row, _values in event.results)
                    yield event
                    if event.state is not RunState.RUNNING:
                        return
                elif kind == "died" and self.resumed < MAX_RESUMES and not self.cancel.is_set():
                    self.engine._close(self.number)
                    self.resumed += 1
                    self._wait_for_engine()
                    log.warning("Resuming a file run in the new engine (%d rows were done)", len(self.done))
                    self.model, self.columns = self._begin()
                    note = f"{message[2].split(':')[0]}; it was started again and the run went on from the rows not yet done."
                    yield _note_event(len(self.done), len(self.texts), note)
                else:
                    raise error_of(message)
        finally:  # finished, failed or abandoned: a run still going in the engine stops there
            self.engine._cancel(self.number)
            self.engine._close(self.number)

    def _wait_for_engine(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.engine.pid is None and time.monotonic() < deadline:
            time.sleep(POLL_S)


def _note_event(done: int, total: int, note: str) -> Any:
    return BatchProgress(done, total, 0.0, 0.0, None, [], [note])


def error_of(message: tuple[Any, ...]) -> BaseException:
    """The exception a failed message stands for: the child's own (UserError keeps its words)."""
    if message[0] == "died":
        return EngineStopped(message[2])
    if message[0] == "error":
        return message[2]
    return RuntimeError(f"Unexpected answer from the engine: {message[0]}")
