"""What runs on a Ray worker: one loaded model, and the local engine's file run over each batch.

:class:`FileWorker` is the callable class Ray Data's ``map_batches`` starts once per actor (on a
Ray worker process, one thread at a time). It loads the model once, then runs each batch of rows
through :class:`desktop.engine.filerun.BatchRun`, exactly as ``pipedesk batch`` does on one machine:
the same validation, length sorting, token budget, OOM split and notes, so a row's answer does
not depend on the engine. Batches arrive as Arrow tables and leave with the results appended,
either as one JSON text per row (exact values, for the driver to write) or as typed columns (for
Parquet parts written on the workers).

Models: on the machine that started the run, workers read Pipedesk's own models folder (the
driver has downloaded the model already). On another machine a Hub model is downloaded once into
that machine's Pipedesk folder, and a model that exists only on the driver's computer (imported,
or a folder) arrives once through Ray's object store (:func:`pack_model`) and is unpacked into
that machine's models folder; a file lock per machine keeps its workers from doing it twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.engine.filerun import BatchRun, task_spec
from desktop.errors import UserError
from desktop.files.table import Table

#: Internal columns; removed before anything is written.
ROW = "__pipedesk_row"
TEXT = "__pipedesk_text"
VALUES = "__pipedesk_values"
NOTES = "__pipedesk_notes"
#: Read by a worker only to learn the type of a result column that a whole batch left empty.
PROBE_TEXT = "Pipedesk reads this sentence once to learn what kind of value each result column holds."


@dataclass(frozen=True)
class ShippedModel:
    """A model folder packed once on the driver: its name, a digest of the pack, the pack's object
    (inside a list, so Ray hands the reference to workers instead of the bytes)."""

    name: str
    digest: str
    pack: list[Any]


def pack_model(folder: Path) -> tuple[bytes, str]:
    """``folder`` as an uncompressed tar (links followed) and the first 16 hex digits of its SHA-256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()[:16]


def node_lock(root: Path) -> Any:
    """The lock a machine's workers hold while they download or unpack a model into ``root``."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / ".pipedesk-workers.lock"))


def unpack_model(shipped: ShippedModel, root: Path) -> Path:
    """The shipped model's folder on this machine, unpacked once (then reused by every worker)."""
    target = root / "shipped" / shipped.digest / shipped.name
    if (target / "config.json").is_file():
        return target
    import ray

    with node_lock(root):
        if not (target / "config.json").is_file():
            scratch = target.parent / f".unpacking-{uuid.uuid4().hex}"
            data = ray.get(shipped.pack[0])
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(scratch, filter="data")
                    else:  # pragma: no cover - Python before 3.10.12 / 3.11.4
                        tar.extractall(scratch)  # noqa: S202 - a pack this run made
                shutil.rmtree(target, ignore_errors=True)
                scratch.rename(target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return target


def cell_texts(values: list[Any]) -> tuple[list[str], dict[int, str]]:
    """Cells as the texts a run reads, with the notes the file reader's rule adds (a text cut)."""
    column = Table(name="", format="", columns=["text"], rows=[[value] for value in values])
    return column.texts("text"), column.notes


def join_notes(*notes: str | None) -> str:
    """Notes in order, empty ones left out (the rule the writer uses for file and run notes)."""
    return "; ".join(note for note in notes if note)


class FileWorker:
    """A Ray Data actor: the model loaded once, each batch of rows run by the local file engine.

    ``output`` is ``"values"`` (append one JSON text per row with its exact result values) or
    ``"columns"`` (append the result columns, typed, under ``names``). Runs on a Ray worker.
    """

    def __init__(
        self,
        task: str,
        model: str | None,
        options: dict[str, Any],
        *,
        text_column: str,
        output: str = "values",
        names: list[str] | None = None,
        keep_notes: bool = True,
        drop: tuple[str, ...] = (),
        device: str | None = None,
        batch_size: int | None = None,
        fast_cpu: bool = False,
        threads: int | None = None,
        shipped: ShippedModel | None = None,
        download: bool = False,
        holds: str = "text",
    ) -> None:
        self.task, self.model, self.options = task, model, options
        self.holds = holds
        self.text_column, self.output, self.names = text_column, output, names or []
        self.keep_notes, self.drop = keep_notes, drop
        self.batch_size, self.fast_cpu = batch_size, fast_cpu
        self.spec = task_spec(task)
        self.types: dict[str, Any] = {}
        self.error: str | None = None
        try:
            self._set_up(device, threads, shipped, download)
        except UserError as exc:  # said on the first batch, as a task error the driver reads
            self.error = str(exc)

    def _set_up(self, device: str | None, threads: int | None, shipped: ShippedModel | None, download: bool):
        from desktop.engine.runtime import Runtime

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.runtime = Runtime(device=device)
        kind = self.spec.kind_for(self.spec.file_inputs("", self.holds))
        if shipped is not None:
            self.model = str(unpack_model(shipped, self.runtime.store.root))
        elif download:
            from desktop.models.ref import ModelRef

            target = self.runtime.resolve(self.spec, self.model, kind)
            if isinstance(target, ModelRef) and self.runtime.store.local_path(target) is None:
                with node_lock(self.runtime.store.root):
                    self.runtime.store.ensure(target)
        self.runtime.load(self.spec, self.model, kind)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if self.error:
            raise UserError(self.error)
        texts, cut = cell_texts(batch.column(self.text_column).to_pylist())
        self.notes: list[str] = []
        rows = self._run(texts)
        for index, values in enumerate(rows):
            values["note"] = join_notes(cut.get(index), values.get("note"))
        batch = batch.drop_columns([name for name in self.drop if name in batch.column_names])
        if self.output == "values":
            texts_out = [json.dumps(values, ensure_ascii=False) for values in rows]
            batch = batch.append_column(VALUES, pa.array(texts_out, pa.string()))
        else:
            from desktop.batch.writer import arrow_array

            columns = [*self.spec.result_columns(self.options), "note"]
            self._learn_types(rows, columns)
            for name, column in zip(self.names, columns, strict=True):
                array = arrow_array([values.get(column) for values in rows], self.types[column])
                batch = batch.append_column(name, array)
        if self.keep_notes:
            run_notes = [json.dumps(self.notes, ensure_ascii=False)] + [None] * (batch.num_rows - 1)
            batch = batch.append_column(NOTES, pa.array(run_notes[: batch.num_rows], pa.string()))
        return batch

    def _run(self, texts: list[str]) -> list[dict[str, Any]]:
        run = BatchRun(
            self.runtime,
            self.task,
            texts,
            self.model,
            batch_size=self.batch_size,
            fast_cpu=self.fast_cpu,
            options=self.options,
            holds=self.holds,
        )
        results: dict[int, dict[str, Any]] = {}
        for event in run:
            results.update(event.results)
            self.notes.extend(note for note in event.notes if note not in self.notes)
        return [dict(results[index]) for index in range(len(texts))]

    def _learn_types(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """Each result column's Arrow type, from the first values this worker sees (a column that a
        whole batch left empty: from one probe sentence), so every Parquet part has the same schema."""
        import pyarrow as pa

        from desktop.batch.writer import arrow_array

        def learn(sample: list[dict[str, Any]]) -> None:
            for column in columns:
                present = [values[column] for values in sample if values.get(column) is not None]
                if column not in self.types and present:
                    self.types[column] = arrow_array(present).type

        learn(rows)
        if any(column not in self.types for column in columns):
            learn(self._run([PROBE_TEXT]))
        for column in columns:
            self.types.setdefault(column, pa.string())
