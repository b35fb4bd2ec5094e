"""File runs: every row of a file through a task's own steps, as fast as the model allows.

Each row goes through the task's ``validate`` and ``preprocess`` exactly as a single request
does (a row a single run refuses gets that refusal as its note, not a label). Rows are taken a
window at a time; the window's pieces are sorted by length and cut into batches by a token budget
(few pad tokens: big batches of short texts, small batches of long ones), each batch goes through
the task's ``forward`` inside ``Runtime.infer`` (the scheduler hands the device out a batch at a
time: single requests go before the run's next batch, and on the CPU the owner's run beside the
batch in flight, which pauses for them; :mod:`desktop.engine.scheduler`), and each row's outputs go through ``postprocess``; results come back in
input order. On a GPU the next window is prepared on a helper thread while the device works; a
batch that runs out of GPU memory is split and retried, and a GPU that keeps failing hands the
rest of the run to the CPU with a note saying so.

:class:`BatchRun` is a generator of :class:`BatchProgress` events, consumed by the CLI (a progress
bar, a results journal) and the Batch tab (live table, chart); it runs on the consumer's thread.
Cancelling (the ``cancel`` event) ends the batch in flight at its next layer (or generated token,
or Whisper window) and drops it; no longer iterating stops after it. Everything yielded so far is
done; a resumed run starts from the rows not yet yielded.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.copies import device_failure, free_device_memory, on_cpu, out_of_memory
from desktop.engine.fastcpu import fast_cpu
from desktop.engine.loaded import Loaded
from desktop.engine.prefetch import prefetched
from desktop.engine.runtime import Runtime, finish
from desktop.engine.scheduler import Work
from desktop.engine.who import Who, limits
from desktop.errors import Stopped, UserError
from desktop.fmt import duration
from desktop.tasks import TASKS, get
from desktop.tasks.spec import Piece, Prepared, TaskSpec

log = logging.getLogger(__name__)

#: Rows prepared and sorted together; bigger windows sort better, smaller ones report sooner. A task
#: whose inputs make several pieces each (Labels: one per label) takes as many fewer rows at a time.
WINDOW_ROWS = 2048
#: Device failures (out of memory even after splitting, CUDA errors) before moving to the CPU.
MAX_DEVICE_FAILURES = 3
#: Rows that fail one by one (not the device: the model or the text) before the run stops.
MAX_ROW_FAILURES = 20
#: Kinds whose models Fast CPU mode quantizes (encoders; int8 generation is slower, not faster).
INT8_KINDS = {"text-classification", "token-classification", "zero-shot-classification"}


class RunState(str, enum.Enum):
    """Where a file run is; the value is what people read ("finished in 3 s")."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


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
    state: RunState = RunState.RUNNING

    def line(self) -> str:
        """'1,234 / 10,000 rows · 85 rows/s · about 1 min 43 s left'."""
        parts = [f"{self.done:,} / {self.total:,} rows"]
        if self.rows_per_s:
            parts.append(f"{self.rows_per_s:,.1f} rows/s")
        if self.state is RunState.RUNNING and self.eta_s is not None:
            parts.append(f"about {duration(self.eta_s)} left")
        elif self.state is not RunState.RUNNING:
            parts.append(f"{self.state} in {duration(self.elapsed_s)}")
        return " · ".join(parts)


def task_spec(task: str) -> TaskSpec:
    """The TaskSpec for ``task``, refusing tasks that do not run on files."""
    spec = get(task)
    if spec.file_input is None:
        names = ", ".join(t for t, s in TASKS.items() if s.file_input)
        hint = " (a prompt over every row is the prompt task)" if spec.id == "chat" else ""
        raise UserError(f"{task} does not run on files{hint}. Tasks that do: {names}.")
    return spec


def row_size(value: Any) -> int:
    """What a row costs, for the time left: its text's length (a whole row: all its texts')."""
    if isinstance(value, dict):
        return sum(len(str(v or "")) for v in value.values())
    return len(value or "")


def count_chart(spec: TaskSpec, rows: Iterable[dict[str, Any]]) -> Counter[str]:
    """How often each label (or entity type) occurs in ``rows``."""
    counts: Counter[str] = Counter()
    for values in rows:
        counts.update(spec.chart_values(values))
    return counts


@dataclass
class _Row:
    """A row in flight: its prepared pieces and their outputs as they arrive."""

    prepared: Prepared
    outputs: list[Any]
    pending: int


@dataclass
class _Failed:
    message: str


class BatchRun:
    """Run ``task`` over ``texts`` with ``runtime``; iterate to make progress.

    ``holds`` says what a row's value is: "text", or the path of a file ("image", "audio": a folder
    run, :attr:`desktop.files.table.Table.holds`).
    ``texts`` holds each row's text, or for a task that ``reads_rows`` each row as a dict (column ->
    text, :func:`desktop.batch.rows.file_values`); ``file_columns`` are then the file's columns, which
    the task checks against its options before anything loads (a prompt naming a missing column).
    """

    def __init__(
        self,
        runtime: Runtime,
        task: str,
        texts: Sequence[Any],
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
        file_columns: Sequence[str] | None = None,
        holds: str = "text",
        who: Who = Who.OWNER,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise UserError(f"The batch size must be at least 1, not {batch_size}.")
        self.runtime = runtime
        self.who = who  # the owner's run or a visitor's: the models allowed, the limits, the queue
        self.task = task
        self.spec = task_spec(task)
        self.options = self.spec.check_options(options or {})
        if self.spec.reads_rows:
            found = file_columns if file_columns is not None else _columns_of(texts)
            self.spec.columns_read(list(found), self.options)
        self.texts = texts
        self.skip = set(skip)
        self.cancel = cancel or threading.Event()
        self.notes: list[str] = []
        self.holds = holds  # what a row's value is: a text, or the path of a photo or a recording
        kind = self.spec.kind_for(self.spec.file_inputs("", holds))
        self.loaded: Loaded = runtime.load(self.spec, model, kind, progress=load_progress, who=who)
        self.notes.extend(self.spec.fit_options(self.loaded, self.options))
        if fast_cpu:
            self._use_int8()
        budget, rows = self.spec.batch_limits(self.loaded.device, self.loaded)
        self.budget = token_budget or budget
        self.max_rows = batch_size or rows
        self.overlap = self.loaded.device != "cpu" if overlap is None else overlap
        self.device_failures = 0
        self.row_failures = 0

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.result_columns(self.options)

    @property
    def model(self) -> str:
        return self.loaded.display

    def refused(self, note: str) -> dict[str, Any]:
        return {**dict.fromkeys(self.columns, None), "note": note}

    # --- the run ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchProgress]:
        total = len(self.texts)
        started = time.perf_counter()
        todo = [i for i in range(total) if i not in self.skip]
        chars_total = sum(row_size(self.texts[i]) for i in todo) or 1
        done, done_here, chars_done = total - len(todo), 0, 0

        def step(
            results: list[tuple[int, dict[str, Any]]], state: RunState = RunState.RUNNING
        ) -> BatchProgress:
            nonlocal done, done_here, chars_done
            done += len(results)
            done_here += len(results)
            chars_done += sum(row_size(self.texts[row]) for row, _ in results)
            elapsed = time.perf_counter() - started
            rate = done_here / elapsed if elapsed > 0 else 0.0
            eta = (
                elapsed * (chars_total - chars_done) / chars_done
                if chars_done and state is RunState.RUNNING
                else None
            )
            notes, self.notes[:] = list(self.notes), []
            return BatchProgress(done, total, elapsed, rate, eta, results, notes, state)

        windows = self._windows(todo)
        try:
            for rows, refused in windows:
                yield step(refused)
                pieces = [piece for row in rows.values() for piece in row.prepared.pieces]
                for batch in self._batches(pieces):
                    if self.cancel.is_set():
                        yield step([], RunState.CANCELLED)
                        return
                    try:
                        outputs = self._execute(batch)
                    except Stopped:  # Stop pressed during the batch: it ended at a layer
                        outputs = []
                    if self.cancel.is_set():  # a batch cut short by Stop is dropped, not written
                        yield step([], RunState.CANCELLED)
                        return
                    finished = []
                    for piece, output in zip(batch, outputs, strict=True):
                        row = rows[piece.row]
                        row.outputs[piece.part] = output
                        row.pending -= 1
                        if row.pending == 0:
                            finished.append((piece.row, self._finish(row)))
                    yield step(finished)
        finally:
            close = getattr(windows, "close", None)
            if close:
                close()
        yield step([], RunState.FINISHED)

    def _finish(self, row: _Row) -> dict[str, Any]:
        failed = [o for o in row.outputs if isinstance(o, _Failed)]
        if failed:
            return self.refused(f"error: {failed[0].message}")
        result = finish(self.spec, self.loaded, row.prepared, row.outputs, self.options)
        return {**self.spec.row_values(result), "note": "; ".join(result.notes)}

    # --- windows and batches ---------------------------------------------------------------

    def _make_window(self, numbers: list[int]) -> tuple[dict[int, _Row], list[tuple[int, dict[str, Any]]]]:
        """Validate and preprocess the window's rows as single requests do; refusals become notes."""
        rows: dict[int, _Row] = {}
        refused: list[tuple[int, dict[str, Any]]] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        for number in numbers:
            try:
                valid.append(
                    (
                        number,
                        self.spec.validate(
                            self.spec.file_inputs(self.texts[number], self.holds), limits(self.who)
                        ),
                    )
                )
            except UserError as exc:
                refused.append((number, self.refused(str(exc))))
        prepared = self.spec.preprocess_many(self.loaded, [inputs for _, inputs in valid], self.options)
        for (number, _inputs), item in zip(valid, prepared, strict=True):
            if isinstance(item, UserError):
                refused.append((number, self.refused(str(item))))
                continue
            for piece in item.pieces:
                piece.row = number
            rows[number] = _Row(item, [None] * len(item.pieces), len(item.pieces))
        return rows, refused

    def _windows(
        self, numbers: list[int]
    ) -> Iterator[tuple[dict[int, _Row], list[tuple[int, dict[str, Any]]]]]:
        size = max(1, WINDOW_ROWS // max(1, self.spec.pieces_per_input(self.options)))
        size = min(size, self.spec.window_rows or size)
        chunks = [numbers[i : i + size] for i in range(0, len(numbers), size)]
        if not self.overlap or len(chunks) < 2:
            for chunk in chunks:
                yield self._make_window(chunk)
            return
        yield from prefetched(self._make_window, chunks)

    def _cost(self, piece: Piece) -> int:
        return piece.length + self.spec.extra_cost(self.options)

    def _batches(self, pieces: list[Piece]) -> Iterator[list[Piece]]:
        """Shortest first; each batch as many pieces as fit the token budget (padded cost); pieces of
        different groups (e.g. summary lengths) never share a batch."""
        ordered = sorted(pieces, key=lambda p: (repr(p.group), self._cost(p)))
        batch: list[Piece] = []
        for piece in ordered:
            full = len(batch) >= self.max_rows or (len(batch) + 1) * self._cost(piece) > self.budget
            if batch and (full or batch[-1].group != piece.group):
                yield batch
                batch = []
            batch.append(piece)
        if batch:
            yield batch

    # --- running one batch -----------------------------------------------------------------

    def _execute(self, batch: list[Piece]) -> list[Any]:
        """Run ``batch``: split on GPU out-of-memory, move to the CPU if the GPU keeps failing."""
        loaded = self.loaded
        try:
            return self.runtime.infer(
                loaded,
                lambda: self.spec.forward(loaded, batch, self.options, self.cancel.is_set),
                Work.of(self.who, file=True),
                stop=self.cancel.is_set,
            )
        except Stopped:
            raise
        except Exception as exc:
            if loaded.device != "cpu" and device_failure(exc):
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
        free_device_memory()
        if len(batch) > 1 and out_of_memory(exc):
            self.budget = max(256, self.budget // 2)
            middle = len(batch) // 2
            log.info(
                "Out of device memory on %d rows: splitting (token budget now %d)", len(batch), self.budget
            )
            return self._execute(batch[:middle]) + self._execute(batch[middle:])
        self.device_failures += 1
        if out_of_memory(exc) or self.device_failures >= MAX_DEVICE_FAILURES:
            device = self.loaded.device
            log.warning("Moving the batch run from %s to the CPU: %s", device, exc)
            self.loaded = on_cpu(self.loaded)
            self.budget, rows = self.spec.batch_limits("cpu", self.loaded)
            self.max_rows = min(self.max_rows, rows)
            self.notes.append(
                f"The GPU ({device}) kept failing ({_first_line(exc)}): the rest of the run continues "
                "on the CPU, more slowly."
            )
        return self._execute(batch)

    def _use_int8(self) -> None:
        """Fast CPU mode: dynamic int8 weights for encoder models (kept with the loaded model)."""
        if self.loaded.kind == "automatic-speech-recognition":
            return  # Whisper already runs in int8 wherever this processor gains (desktop.engine.whisper)
        if self.loaded.kind not in INT8_KINDS:
            self.notes.append(
                "Fast CPU mode applies to classification, NER and NLI (Labels) models; this one runs at "
                "full precision."
            )
        elif self.loaded.device != "cpu":
            self.notes.append(
                "Fast CPU mode is for the CPU; the GPU already runs this model in 16-bit precision."
            )
        else:
            self.loaded, note = fast_cpu(self.loaded)
            if note:
                self.notes.append(note)


def _columns_of(rows: Sequence[Any]) -> list[str]:
    first = next((row for row in rows if isinstance(row, dict)), {})
    return list(first)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
