"""The one front door to the engine: everything above it (ui, server, share, api, shell, cli)
asks the engine through :class:`Engine` and nothing else.

An engine runs a request (a task's API arguments; file inputs are paths on disk) with progress
and partial results, runs a file, says how it stands, warms up. Who asks (the owner or a visitor)
is a field of each request (:class:`Request`), never a copy of the engine; the models on disk are
the store's business (:class:`desktop.models.store.ModelStore`), held beside the engine.
Like vLLM's ``EngineCoreClient``: one interface, an implementation in this process
(:class:`InProcessEngine`: ``pipedesk run``, the tests' fast tier, Ray workers), another whose
engine lives in a child process.

:class:`Door` is what a page or an API holds: an engine and who is asking through it (the
owner's window, or the visitors' app), with the calls the page makes.

Threads: any; each call blocks its caller (Gradio's workers, the CLI's main thread).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from desktop.engine.who import Who, limits
from desktop.files import Limits
from desktop.tasks.spec import Result, Stop

if TYPE_CHECKING:
    from desktop.models.store import ModelStore, ProgressCallback


#: Engine states in which requests cannot be answered now (:attr:`Status.engine`).
ENGINE_DOWN = ("restarting", "stopped")


@dataclass
class Status:
    """What the status line shows."""

    device: str
    dtype: str
    model: str = ""
    latency_ms: float | None = None
    loaded: int = 0
    #: The engine process: "starting", "running", "restarting" (it stopped; the next one is not up
    #: yet) or "stopped" (it kept ending at start: not started again). In-process: always "running".
    engine: str = "running"

    def line(self) -> str:
        if self.engine in ENGINE_DOWN:
            parts = [
                "Engine: **starting again** after it stopped"
                if self.engine == "restarting"
                else "Engine: **stopped** (it kept ending as it started; the log file says why)"
            ]
        elif not self.dtype:  # torch is still loading in the background: nothing has run yet
            parts = ["Device: chosen when the first model runs (CUDA, Apple MPS or the CPU)"]
        else:
            parts = [f"Device: **{self.device.upper()}** ({self.dtype})"]
        if self.model:
            parts.append(f"model: **{self.model}**")
        if self.latency_ms is not None:
            parts.append(f"last run: **{self.latency_ms:,.0f} ms**")
        parts.append(f"models in memory: {self.loaded}")
        return " · ".join(parts)


@dataclass
class Request:
    """One run of a task: its API's positional arguments (inputs, model, options; files as paths),
    who asks, and how the caller follows it (``progress(done, total, words)``; ``stop()`` turning
    true ends it early, keeping what is done)."""

    task: str
    args: tuple[Any, ...]
    who: Who = Who.OWNER
    progress: ProgressCallback | None = None
    stop: Stop = None


class Engine(abc.ABC):
    """What the front asks of the engine; see the module doc."""

    @abc.abstractmethod
    def predict(self, request: Request) -> Result:
        """The finished result of ``request`` (a refusal raises UserError, in words)."""

    @abc.abstractmethod
    def stream(self, request: Request) -> Iterator[Result]:
        """Partial results as they come (generation), then the finished one."""

    @abc.abstractmethod
    def run_file(self, task: str, texts: Sequence[Any], model: str | None, who: Who, **settings: Any) -> Any:
        """A file run (iterate it for progress and rows; ``settings``: see BatchRun)."""

    @abc.abstractmethod
    def status(self) -> Status:
        """The device, the last run, the models in memory."""

    @property
    @abc.abstractmethod
    def chosen_device(self) -> str | None:
        """The device once chosen (None before the first model runs); never waits."""

    @abc.abstractmethod
    def device(self) -> str:
        """The device models run on (choosing it if need be: may import torch)."""

    @abc.abstractmethod
    def warm_up(self) -> threading.Thread | None:
        """Start importing what the first request needs, in the background."""

    @abc.abstractmethod
    def devices(self) -> tuple[list[tuple[str, str]], str]:
        """The devices this computer offers ((label, value) pairs) and what was found, in words."""

    @abc.abstractmethod
    def unload(self) -> None:
        """Let go of every model in memory (they load again when next used)."""


@dataclass(frozen=True)
class Door:
    """An engine as one kind of caller uses it: the owner's window, or the visitors' app. The pages,
    the Local API and the CLI hold a Door; :meth:`visitors` gives the visitors' one."""

    engine: Engine
    store: ModelStore
    who: Who = Who.OWNER

    @property
    def visitor(self) -> bool:
        return self.who is Who.VISITOR

    def visitors(self) -> Door:
        """The same engine and models as visitors use them (installed models only, their limits)."""
        return dataclasses.replace(self, who=Who.VISITOR)

    @property
    def limits(self) -> Limits:
        """What a file handed in through this door may cost."""
        return limits(self.who)

    def predict(
        self, spec: Any, *args: Any, progress: ProgressCallback | None = None, stop: Stop = None
    ) -> Result:
        """Run ``spec`` once with the API's positional arguments."""
        return self.engine.predict(Request(spec.id, args, self.who, progress, stop))

    def stream(
        self, spec: Any, *args: Any, progress: ProgressCallback | None = None, stop: Stop = None
    ) -> Iterator[Result]:
        """Partial results as they come, then the finished one."""
        return self.engine.stream(Request(spec.id, args, self.who, progress, stop))

    def run_file(self, task: str, texts: Sequence[Any], model: str | None = None, **settings: Any) -> Any:
        """A file run for this door's caller (see BatchRun for ``settings``)."""
        return self.engine.run_file(task, texts, model, self.who, **settings)

    @property
    def status(self) -> Status:
        return self.engine.status()

    @property
    def chosen_device(self) -> str | None:
        return self.engine.chosen_device

    @property
    def device(self) -> str:
        return self.engine.device()

    def warm_up_in_background(self) -> threading.Thread | None:
        return self.engine.warm_up()

    def devices(self) -> tuple[list[tuple[str, str]], str]:
        """The devices this computer offers and what was found (the Settings tab)."""
        return self.engine.devices()

    def unload(self) -> None:
        """Let go of every model in memory: with the engine in its own process, the memory goes
        back to the system (a fresh engine starts)."""
        self.engine.unload()
