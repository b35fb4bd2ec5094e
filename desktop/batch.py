"""The batch engine: many texts through one model, as fast as the model itself allows.

Rows are taken a window at a time; each window's texts are tokenized in one
call, sorted by token count and cut into batches by a token budget (few pad
tokens, big batches of short texts, small batches of long ones); results
come back in input order whatever order they were computed in. Every batch
goes through ``Runtime.infer`` (inference mode, one job at a time on the
device, so single requests from the UI slip in between batches). On a GPU the
next window is tokenized on a helper thread while the device works; a batch
that runs out of GPU memory is split and retried, and a GPU that keeps
failing hands the rest of the run to the CPU with a note saying so.

:class:`BatchRun` is a generator of :class:`BatchProgress` events, consumed by
the CLI (a progress bar, a results journal) and the Batch tab (live table,
chart); it runs on the consumer's thread. Cancelling (the ``cancel`` event, or
simply no longer iterating) stops after the batch in flight; everything
yielded so far is done.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.batch_tasks import Adapter, Piece, make_adapter, quantized
from desktop.errors import UserError
from desktop.runtime import Loaded, Runtime

log = logging.getLogger(__name__)

#: Rows tokenized and sorted together; bigger windows sort better, smaller ones report sooner.
WINDOW_ROWS = 2048
#: Device failures (out of memory even after splitting, CUDA errors) before moving to the CPU.
MAX_DEVICE_FAILURES = 3
#: Rows that fail one by one (not the device: the model or the text) before the run stops.
MAX_ROW_FAILURES = 20
EMPTY_NOTE = "empty row: nothing to analyse"


@dataclass
class BatchProgress:
    """One step of a run: how far it is, and the rows finished since the last step."""

    done: int
    total: int
    elapsed_s: float
    rows_per_s: float
    eta_s: float | None
    results: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    state: str = "running"  # "running", "finished" or "cancelled"

    def line(self) -> str:
        """'1,234 / 10,000 rows · 85 rows/s · about 1 min 43 s left'."""
        parts = [f"{self.done:,} / {self.total:,} rows"]
        if self.rows_per_s:
            parts.append(f"{self.rows_per_s:,.1f} rows/s")
        if self.state == "running" and self.eta_s is not None:
            parts.append(f"about {duration(self.eta_s)} left")
        elif self.state != "running":
            parts.append(f"{self.state} in {duration(self.elapsed_s)}")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def task_spec(task: str):
    """The TaskSpec for ``task``, refusing tasks that do not take plain text."""
    from desktop.tasks import TASKS, classify, get

    spec = get(task)
    if task == "classify":
        return classify.TEXT_SPEC
    if not spec.text_input:
        names = ", ".join(t for t, s in TASKS.items() if s.text_input)
        raise UserError(f"{task} does not take text, so it cannot run on a file. Text tasks: {names}.")
    return spec


def model_name(task: str, model: str | None) -> str | None:
    from desktop.tasks import classify

    name = (model or "").strip()
    if task == "classify" and name in ("", classify.AUTO, classify.AUTO_LABEL):
        return None
    return name or None


class BatchRun:
    """Run ``task`` over ``texts`` with ``runtime``; iterate to make progress."""

    def __init__(
        self,
        runtime: Runtime,
        task: str,
        texts: Sequence[str | None],
        model: str | None = None,
        *,
        batch_size: int | None = None,
        token_budget: int | None = None,
        fast_cpu: bool = False,
        options: dict[str, Any] | None = None,
        skip: Collection[int] = (),
        cancel: threading.Event | None = None,
        overlap: bool | None = None,
        load_progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise UserError(f"The batch size must be at least 1, not {batch_size}.")
        self.runtime = runtime
        self.task = task
        self.spec = task_spec(task)
        self.texts = texts
        self.skip = set(skip)
        self.cancel = cancel or threading.Event()
        self.notes: list[str] = []
        self.loaded: Loaded = runtime.load(self.spec, model_name(task, model), progress=load_progress)
        self.adapter: Adapter = make_adapter(self.loaded, task, options or {})
        if fast_cpu:
            note = quantized(self.adapter)
            if note:
                self.notes.append(note)
        budget, rows = self.adapter.defaults(self.adapter.device)
        self.budget = token_budget or budget
        self.max_rows = batch_size or rows
        self.overlap = self.adapter.device != "cpu" if overlap is None else overlap
        self.device_failures = 0
        self.row_failures = 0

    @property
    def columns(self) -> tuple[str, ...]:
        return self.adapter.columns

    @property
    def model(self) -> str:
        return self.loaded.display

    def empty_result(self, note: str = EMPTY_NOTE) -> dict[str, Any]:
        return {**dict.fromkeys(self.columns, None), "note": note}

    # --- the run ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchProgress]:
        total = len(self.texts)
        started = time.perf_counter()
        todo = [i for i in range(total) if i not in self.skip]
        empty = [i for i in todo if not (self.texts[i] or "").strip()]
        work = [i for i in todo if (self.texts[i] or "").strip()]
        chars_total = sum(len(self.texts[i]) for i in work) or 1
        done = total - len(todo) + len(empty)
        done_here, chars_done = len(empty), 0

        def step(results: list[tuple[int, dict[str, Any]]], state: str = "running") -> BatchProgress:
            elapsed = time.perf_counter() - started
            rate = done_here / elapsed if elapsed > 0 else 0.0
            eta = None
            if chars_done and state == "running":
                eta = elapsed * (chars_total - chars_done) / chars_done
            notes, self.notes[:] = list(self.notes), []
            return BatchProgress(done, total, elapsed, rate, eta, results, notes, state)

        yield step([(i, self.empty_result()) for i in empty])
        windows = self._windows(work)
        try:
            for pieces, rows in windows:
                pending = {row: len(parts) for row, parts in rows.items()}
                outputs: dict[int, list[Any]] = {row: [None] * len(parts) for row, parts in rows.items()}
                for batch in self._batches(pieces):
                    if self.cancel.is_set():
                        yield step([], "cancelled")
                        return
                    results = []
                    for piece, output in zip(batch, self._execute(batch), strict=True):
                        outputs[piece.row][piece.part] = output
                        pending[piece.row] -= 1
                        if pending[piece.row] == 0:
                            results.append(
                                (piece.row, self._combine(piece.row, rows[piece.row], outputs[piece.row]))
                            )
                    done += len(results)
                    done_here += len(results)
                    chars_done += sum(len(self.texts[row]) for row, _ in results)
                    yield step(results)
        finally:
            close = getattr(windows, "close", None)
            if close:
                close()
        yield step([], "finished")

    def _combine(self, row: int, pieces: list[Piece], outputs: list[Any]) -> dict[str, Any]:
        failed = [o for o in outputs if isinstance(o, _Failed)]
        if failed:
            return self.empty_result(f"error: {failed[0].message}")
        values = self.adapter.combine(self.texts[row], outputs, pieces)
        values["note"] = self.adapter.truncation_note() if any(p.truncated for p in pieces) else ""
        return values

    # --- windows and batches ---------------------------------------------------------------

    def _make_window(self, rows: list[int]) -> tuple[list[Piece], dict[int, list[Piece]]]:
        by_row: dict[int, list[Piece]] = {}
        pieces: list[Piece] = []
        for row in rows:
            parts = [Piece(row, text, part) for part, text in enumerate(self.adapter.split(self.texts[row]))]
            by_row[row] = parts
            pieces.extend(parts)
        self.adapter.encode(pieces)
        return pieces, by_row

    def _windows(self, rows: list[int]) -> Iterator[tuple[list[Piece], dict[int, list[Piece]]]]:
        chunks = [rows[i : i + WINDOW_ROWS] for i in range(0, len(rows), WINDOW_ROWS)]
        if not self.overlap or len(chunks) < 2:
            for chunk in chunks:
                yield self._make_window(chunk)
            return
        yield from _prefetched(self._make_window, chunks)

    def _batches(self, pieces: list[Piece]) -> Iterator[list[Piece]]:
        """Shortest first; each batch as many pieces as fit the token budget (padded cost)."""
        cost = self.adapter.cost
        ordered = sorted(pieces, key=cost)
        batch: list[Piece] = []
        for piece in ordered:
            if batch and (len(batch) >= self.max_rows or (len(batch) + 1) * cost(piece) > self.budget):
                yield batch
                batch = []
            batch.append(piece)
        if batch:
            yield batch

    # --- running one batch -----------------------------------------------------------------

    def _execute(self, batch: list[Piece]) -> list[Any]:
        """Run ``batch``: split on GPU out-of-memory, move to the CPU if the GPU keeps failing."""
        try:
            return self.runtime.infer(self.loaded, lambda _obj: self.adapter.run(batch))
        except Exception as exc:
            if self.adapter.device != "cpu" and _device_failure(exc):
                return self._device_failed(batch, exc)
            if len(batch) > 1:
                middle = len(batch) // 2
                return self._execute(batch[:middle]) + self._execute(batch[middle:])
            self.row_failures += 1
            log.warning("Row %d failed: %s", batch[0].row, exc)
            if self.row_failures > MAX_ROW_FAILURES:
                raise UserError(
                    f"{self.model} failed on more than {MAX_ROW_FAILURES} rows; the last error: {_first_line(exc)}"
                ) from exc
            return [_Failed(_first_line(exc))]

    def _device_failed(self, batch: list[Piece], exc: BaseException) -> list[Any]:
        _free_device_memory()
        if len(batch) > 1 and _out_of_memory(exc):
            self.budget = max(256, self.budget // 2)
            middle = len(batch) // 2
            log.info(
                "Out of device memory on %d rows: splitting (token budget now %d)", len(batch), self.budget
            )
            return self._execute(batch[:middle]) + self._execute(batch[middle:])
        self.device_failures += 1
        if _out_of_memory(exc) or self.device_failures >= MAX_DEVICE_FAILURES:
            device = self.adapter.device
            log.warning("Moving the batch run from %s to the CPU: %s", device, exc)
            self.adapter.to_cpu()
            self.budget, rows = self.adapter.defaults("cpu")
            self.max_rows = min(self.max_rows, rows)
            self.notes.append(
                f"The GPU ({device}) kept failing ({_first_line(exc)}): the rest of the run continues "
                "on the CPU, more slowly."
            )
        return self._execute(batch)


@dataclass
class _Failed:
    message: str


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _device_failure(exc: BaseException) -> bool:
    text = str(exc)
    return _out_of_memory(exc) or "CUDA" in text or "MPS" in text or "cuDNN" in text


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _prefetched(make: Callable[[Any], Any], chunks: list[Any]) -> Iterator[Any]:
    """``make(chunk)`` for each chunk, one step ahead on a helper thread (tokenizing while the GPU works)."""
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

    thread = threading.Thread(target=produce, name="batch-tokenize", daemon=True)
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
