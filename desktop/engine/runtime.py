"""Runtime: the device, the loaded-model cache, and running a task's steps.

Threads: Gradio's workers, the CLI's main thread and a file run's thread all call in. Three
kinds of lock, always taken in this order and never the other way round:

* a load lock per model: two requests for the same model load (and download) it once, and a
  download never blocks other models or inference;
* the cache lock: a few dict operations (the LRU bounded by a memory budget);
* the device: held only while a task's ``forward`` runs (:meth:`Runtime.infer`), handed out by
  the one scheduler (:mod:`desktop.engine.scheduler`: the owner's request, a visitor's request,
  the owner's file run, a visitor's file run, in that order), so the device sees one job at a time
  however many tabs, files or visitors ask; single requests that wait together run as one batch
  (:mod:`desktop.engine.batcher`).

Who asks (the owner or a visitor, :class:`~desktop.engine.scheduler.Who`) is an argument of each
call: it picks the name policy (visitors: installed models only), the file limits and the place
in the queue. Above the engine, code reaches this through :mod:`desktop.engine.client`.

Tokenizers follow the rule in :mod:`desktop.engine.loaded`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from desktop.engine import lane, whisper
from desktop.engine.batcher import Batcher
from desktop.engine.client import Status
from desktop.engine.copies import free_device_memory
from desktop.engine.device import check_device_name, choose_device, default_budget_bytes, dtype_name
from desktop.engine.loaded import Loaded, load_model, text_api
from desktop.engine.resolve import resolve
from desktop.engine.scheduler import Scheduler, Work
from desktop.engine.who import Who, limits, policy
from desktop.hf import transformers_api
from desktop.models import catalog
from desktop.models.compat import check_fits
from desktop.models.ref import ModelRef
from desktop.models.store import ModelStore, ProgressCallback
from desktop.tasks.spec import Result, Stop, TaskSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
STOPPED_NOTE = "Stopped: the text so far is kept."


class Runtime:
    """Chooses the device once, loads models on demand, keeps them warm, runs tasks on them."""

    def __init__(
        self,
        device: str | None = None,
        store: ModelStore | None = None,
        budget_bytes: int | None = None,
        batch_requests: bool = True,
    ) -> None:
        self.requested_device = check_device_name(device)  # a typo is refused now; the rest needs torch
        self._asked = device  # None: the environment's or the saved choice (which falls back to auto)
        self._device: str | None = None
        self._budget_bytes = budget_bytes
        self._choosing = threading.Lock()
        self.store = store or ModelStore()
        self.status = Status(device=self.requested_device, dtype="")
        self.load_count = 0  # models loaded from disk so far (tests and the status line)
        self._cache: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}
        self._last_request: tuple[str, str, str] | None = None  # the owner's, as remembered
        self.scheduler = Scheduler()
        self.batcher = Batcher(self.infer, merge=batch_requests)  # concurrent requests share batches

    @property
    def device(self) -> str:
        """The device models run on, chosen on first use (choosing imports torch: the UI does not wait
        for it at start-up)."""
        if self._device is None:
            with self._choosing:
                if self._device is None:
                    device = choose_device(self._asked)
                    self.budget_bytes = self._budget_bytes or default_budget_bytes(device)
                    self.status.device, self.status.dtype = device, dtype_name(device)
                    self._device = device
        return self._device

    @property
    def chosen_device(self) -> str | None:
        """The device once chosen, else None (never chooses: the Settings tab asks without waiting)."""
        return self._device

    def warm_up(self, preload: bool = False) -> None:
        """Import what the first request needs (torch, transformers) and choose the device: run on a
        background thread once the page is served, so the first answer does not wait for imports.
        ``preload``: then load the model of the owner's last request too (:meth:`preload_last`)."""
        started = time.perf_counter()
        device = self.device
        text_api()
        log.info("Warmed up in %.1fs (device %s)", time.perf_counter() - started, device)
        if preload:
            self.preload_last()

    def preload_last(self) -> str | None:
        """Load the model of the owner's last request (remembered in the models folder) if it is on
        disk: what the person most likely asks first is ready before they ask. Never downloads; a
        model that cannot load is left to the request that asks for it. Its display name, or None."""
        found = catalog.last_request(self.store.root)
        if found is None:
            return None
        task, name, kind = found
        try:
            from desktop.tasks import spec_of

            spec = spec_of(task)
            target = self.resolve(spec, name or None, kind)
            if isinstance(target, ModelRef) and self.store.local_path(target) is None:
                return None  # removed since (or never finished): no download at start-up
            started = time.perf_counter()
            loaded = self.load(spec, name or None, kind)
        except Exception as exc:  # noqa: BLE001 (a start-up nicety: the request will say what is wrong)
            log.info("Not loading the last used model (%s %s) in advance: %s", task, name, exc)
            return None
        log.info("Loaded %s in advance in %.1fs", loaded.display, time.perf_counter() - started)
        return loaded.display

    def warm_up_in_background(self) -> threading.Thread:
        """:meth:`warm_up` on a daemon thread (errors are logged: the first request reports them)."""

        def work() -> None:
            try:
                self.warm_up()
            except Exception:
                log.exception("Warming up failed; the first request will say why")

        thread = threading.Thread(target=work, name="warm-up", daemon=True)
        thread.start()
        return thread

    # --- which model -------------------------------------------------------------------

    def resolve(
        self, spec: TaskSpec, name: str | None, kind: str | None = None, who: Who = Who.OWNER
    ) -> ModelRef | Path:
        """What ``name`` means for ``spec`` when ``who`` asks (see desktop.engine.resolve)."""
        return resolve(spec, name, kind or spec.kind, self.store, policy(who))

    # --- loading -----------------------------------------------------------------------

    def load(
        self,
        spec: TaskSpec,
        name: str | None,
        kind: str | None = None,
        progress: ProgressCallback | None = None,
        who: Who = Who.OWNER,
    ) -> Loaded:
        """The model ``name`` for ``spec`` (inputs of ``kind``), from memory if it is there."""
        kind = kind or spec.kind
        target = self.resolve(spec, name, kind, who)
        if isinstance(target, ModelRef):
            display, key = target.display, (kind, f"{target.repo}@{target.revision}")
        else:
            display, key = target.name, (kind, str(target))
        found = self._cached(key)
        if found is not None:
            return found
        with self._cache_lock:
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            found = self._cached(key)
            if found is not None:
                return found
            if isinstance(target, ModelRef):
                folder = self.store.ensure(target, progress)
            else:
                folder = target
                self._touch_imported(name)
            check_fits(kind, folder, display)
            if progress:
                progress(0, 0, f"Loading {display} into memory")
            speech = kind == "automatic-speech-recognition"
            converted = self.store.converted_copy(folder, whisper.ENGINE) if speech else None
            loaded = load_model(kind, folder, display, self.device, converted, progress)
            with self._cache_lock:
                self._cache[key] = loaded
                self.load_count += 1
                self._evict()
                self.status.loaded = len(self._cache)
            return loaded

    def _cached(self, key: tuple[str, str]) -> Loaded | None:
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _remember(self, task: str, name: str, kind: str) -> None:
        """Note the owner's request for :meth:`preload_last` (written only when it changed)."""
        if (task, name, kind) != self._last_request:
            self._last_request = (task, name, kind)
            catalog.remember_last(task, name, kind, self.store.root)

    def _touch_imported(self, name: str | None) -> None:
        typed = (name or "").strip()
        if typed and typed in catalog.imported(self.store.root):
            catalog.touch(typed, self.store.root)

    def _evict(self) -> None:
        """Drop least recently used models until the rest fit the budget (the newest always stays)."""
        self.device  # noqa: B018  (the budget is known once the device is)
        while len(self._cache) > 1 and self.memory_in_use() > self.budget_bytes:
            _key, old = self._cache.popitem(last=False)
            log.info("Unloading %s to stay within the memory budget", old.display)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def unload_all(self) -> None:
        """Drop every model from memory (what this process's allocator keeps, it keeps)."""
        with self._cache_lock:
            self._cache.clear()
            self.status.loaded = 0
        if self._device is not None:  # nothing ran yet: torch need not even be imported
            free_device_memory()

    def memory_in_use(self) -> int:
        return sum(item.nbytes for item in self._cache.values())

    def loaded_models(self) -> list[str]:
        """Display names of the models in memory, least recently used first."""
        with self._cache_lock:
            return [item.display for item in self._cache.values()]

    # --- running -----------------------------------------------------------------------

    def infer(
        self, loaded: Loaded, call: Callable[[], T], work: Work = Work.OWNER_REQUEST, stop: Stop = None
    ) -> T:
        """Run ``call()`` (a task's forward) on the device when the scheduler says so, and time it.

        Visitors' work runs on the visitors' lane (:mod:`desktop.engine.lane`); anyone's but the
        owner's requests may pause between layers while an owner's request runs beside it on the CPU
        (:mod:`desktop.engine.scheduler`). ``stop`` (a file run's Stop; its batch is then dropped)
        ends the pass at the next layer with :class:`~desktop.errors.Stopped`.
        """
        if work.visitors:
            return lane.run_in_lane(lambda: self._on_device(loaded, call, work, stop))
        return self._on_device(loaded, call, work, stop)

    def _on_device(self, loaded: Loaded, call: Callable[[], T], work: Work, stop: Stop = None) -> T:
        """:meth:`infer` on the calling thread: waits for the scheduler, runs, times."""
        import torch

        if work is not Work.OWNER_REQUEST:
            lane.make_pausable(loaded.model)
        with (
            self.scheduler.device(work, cpu=str(loaded.device) == "cpu"),
            lane.stoppable(stop),
            torch.inference_mode(),
        ):
            started = time.perf_counter()
            result = call()
            self.status.latency_ms = (time.perf_counter() - started) * 1000
            self.status.model = loaded.display
        return result

    def prepare(
        self, spec: TaskSpec, args: tuple[Any, ...], progress: ProgressCallback | None, who: Who = Who.OWNER
    ) -> tuple[Loaded, Any, dict[str, Any]]:
        """Validate the API arguments, load the model, preprocess: (model, prepared, options)."""
        inputs, name, options = spec.split_arguments(args)
        inputs = spec.validate(inputs, limits(who))  # refusals come before any download
        options = spec.check_options(options)
        kind = spec.kind_for(inputs)
        loaded = self.load(spec, name, kind, progress, who)
        if who is Who.OWNER:
            self._remember(spec.id, name or "", kind)
        notes = spec.fit_options(loaded, options)
        prepared = spec.preprocess(loaded, inputs, options)
        prepared.notes[:0] = notes
        return loaded, prepared, options

    def predict(
        self,
        spec: TaskSpec,
        *args: Any,
        progress: ProgressCallback | None = None,
        stop: Stop = None,
        who: Who = Who.OWNER,
    ) -> Result:
        """Run ``spec`` once with the API's positional arguments, for ``who``."""
        loaded, prepared, options = self.prepare(spec, args, progress, who)
        work = Work.of(who)
        pieces = prepared.pieces
        _budget, most = spec.batch_limits(loaded.device, loaded)
        outputs: list[Any] = []
        said = f"{spec.title}: {len(pieces)} parts"
        for start in range(0, len(pieces), max(1, most)):  # a long input: a batch of parts at a time
            if progress and len(pieces) > 1:
                progress(start, len(pieces), said, unit="parts")
            chunk = pieces[start : start + max(1, most)]
            outputs += self.batcher.forward(loaded, spec, chunk, options, stop, work)
        if progress and len(pieces) > 1:
            progress(len(pieces), len(pieces), said, unit="parts")
        return finish(spec, loaded, prepared, outputs, options)

    def stream(
        self,
        spec: TaskSpec,
        *args: Any,
        progress: ProgressCallback | None = None,
        stop: Stop = None,
        who: Who = Who.OWNER,
    ) -> Iterator[Result]:
        """Partial results as the model produces them (generation), then the finished one.

        Generation runs on a helper thread inside :meth:`infer`; it ends early, freeing the device,
        when ``stop()`` turns true or the caller stops iterating (an abandoned stream).
        """
        if not spec.streams:
            yield self.predict(spec, *args, progress=progress, stop=stop, who=who)
            return
        loaded, prepared, options = self.prepare(spec, args, progress, who)
        streamer = transformers_api("TextIteratorStreamer").TextIteratorStreamer(
            loaded.stream_tokenizer(), skip_prompt=True, skip_special_tokens=True
        )
        halt = threading.Event()

        def halted() -> bool:
            return halt.is_set() or bool(stop and stop())

        outputs: list[Any] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                outputs.extend(
                    self.infer(
                        loaded,
                        lambda: spec.forward(loaded, prepared.pieces, options, halted, streamer),
                        Work.of(who),
                    )
                )
            except BaseException as exc:  # handed to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, name=f"stream-{spec.id}", daemon=True)
        thread.start()
        text = ""
        try:
            for piece in streamer:
                text += piece
                yield spec.partial(loaded, prepared, text)
        finally:  # also when the consumer goes away: generation stops at the next token
            halt.set()
            thread.join()
        if errors:
            raise errors[0]
        result = finish(spec, loaded, prepared, outputs, options)
        if stop and stop():
            result.notes.append(STOPPED_NOTE)
        yield result


def finish(
    spec: TaskSpec, loaded: Loaded, prepared: Any, outputs: list[Any], options: dict[str, Any]
) -> Result:
    """``postprocess`` plus what every result carries: preprocess's notes and the model's name."""
    result = spec.postprocess(loaded, prepared, outputs, options)
    result.notes = [*prepared.notes, *result.notes]
    result.model = loaded.display
    return result
