"""The engine in this process: :class:`InProcessEngine`, the front door's first implementation
(``pipedesk run`` and ``batch``, the tests' fast tier, the engine process's own inside).

Threads: any; each call runs on its caller's thread (see :mod:`desktop.engine.runtime`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from desktop.engine.client import Engine, Request, Status
from desktop.engine.filerun import BatchRun
from desktop.engine.runtime import Runtime
from desktop.engine.who import Who
from desktop.tasks import spec_of
from desktop.tasks.spec import Result


class InProcessEngine(Engine):
    """The engine in this process: a :class:`~desktop.engine.runtime.Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __eq__(self, other: object) -> bool:  # two doors onto one runtime are the same engine
        return isinstance(other, InProcessEngine) and other._runtime is self._runtime

    def __hash__(self) -> int:
        return id(self._runtime)

    def predict(self, request: Request) -> Result:
        return self._runtime.predict(
            spec_of(request.task),
            *request.args,
            progress=request.progress,
            stop=request.stop,
            who=request.who,
        )

    def stream(self, request: Request) -> Iterator[Result]:
        return self._runtime.stream(
            spec_of(request.task),
            *request.args,
            progress=request.progress,
            stop=request.stop,
            who=request.who,
        )

    def run_file(
        self, task: str, texts: Sequence[Any], model: str | None, who: Who, **settings: Any
    ) -> BatchRun:
        return BatchRun(self._runtime, task, texts, model, who=who, **settings)

    def status(self) -> Status:
        return self._runtime.status

    @property
    def chosen_device(self) -> str | None:
        return self._runtime.chosen_device

    def device(self) -> str:
        return self._runtime.device

    def warm_up(self) -> threading.Thread | None:
        return self._runtime.warm_up_in_background()

    def devices(self) -> tuple[list[tuple[str, str]], str]:
        from desktop.engine.device import detected

        return detected()

    def unload(self) -> None:
        self._runtime.unload_all()
