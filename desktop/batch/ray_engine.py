"""The Ray engine: a file run spread over Ray workers, each running the local engine on its rows.

``pipedesk batch TASK -i IN -o OUT --engine ray``: with no address a Ray instance is started on this
machine (sized to it) and stopped at the end; with ``auto`` or ``ray://host:10001`` the run goes
to that cluster; a process that has already initialised Ray uses it as it is. Rows go to a fixed
pool of model-holding actors (:class:`desktop.batch.ray_worker.FileWorker`) in batches of
:data:`ROWS_PER_TASK`, the local engine's window, starting at row 0: each worker sorts and batches
a window exactly as one machine would, so every answer, refusal and note is the local engine's
(scores to the last digits only when a worker runs as many torch threads as this process: float
sums in another order differ there, labels do not). Ray Data keeps the batches in input order (``preserve_order``) and carries a
row number besides. Workers that die are replaced and their batch run again (up to
:data:`RETRIES` times).

Ray is imported only here (and on the workers), never by the app or ``pipedesk --help``;
:func:`require` says how to install it. Runs on the caller's thread (the CLI's main thread);
iterating a :class:`RayRun` drives the job, and stopping (Ctrl+C) cancels it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.batch import ray_io
from desktop.batch.ray_cluster import Cluster, connect, first_line, plan_workers, require
from desktop.batch.ray_io import FLAT, FOLDER, PARQUET, Source
from desktop.batch.ray_worker import NOTES, ROW, TEXT, VALUES, FileWorker, ShippedModel, pack_model
from desktop.batch.writer import result_names, write_results
from desktop.engine.filerun import WINDOW_ROWS, task_spec
from desktop.errors import UserError
from desktop.files.table import Table
from desktop.models.ref import ModelRef
from desktop.models.state import ProgressCallback

log = logging.getLogger(__name__)

#: Rows per worker call: the local engine's window, so batches are the ones it makes.
ROWS_PER_TASK = WINDOW_ROWS
#: Restarts of a dead worker, and retries of the batch it held, before the run stops.
RETRIES = 3
#: Environment the workers get from the driver: where the Hub is, offline mode, the token.
FORWARDED_ENV = ("HF_ENDPOINT", "HF_TOKEN")


@dataclass
class RayProgress:
    """Rows finished since the last step, the run's notes, and the totals so far."""

    rows: int
    done: int
    total: int | None
    notes: list[str] = field(default_factory=list)


class RayRun:
    """One file run on Ray. Use as a context manager (it connects and reads the input), then iterate
    for :class:`RayProgress`; the output is written when the iteration ends.

    ``same_machine`` (default: whether every Ray node is this computer) says whether workers share
    this computer's models folder; ``worker_env`` adds environment variables for the workers;
    ``worker`` is the actor class (tests pass a subclass whose process dies once).
    """

    def __init__(
        self,
        task: str,
        source: str,
        output: str,
        model: str | None = None,
        *,
        column: str | None = None,
        options: dict[str, Any] | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        fast_cpu: bool = False,
        cluster: Cluster | None = None,
        rows_per_task: int = ROWS_PER_TASK,
        same_machine: bool | None = None,
        worker_env: dict[str, str] | None = None,
        load_progress: ProgressCallback | None = None,
        worker: type[FileWorker] = FileWorker,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise UserError(f"The batch size must be at least 1, not {batch_size}.")
        self.cluster = cluster or Cluster()
        if self.cluster.workers is not None and self.cluster.workers < 1:
            raise UserError(f"--workers must be at least 1, not {self.cluster.workers}.")
        if (self.cluster.gpus_per_worker or 0) < 0:
            raise UserError("--gpus-per-worker cannot be negative.")
        self.task, self.source_name, self.output = task, source, output
        self.spec = task_spec(task)
        self.options = self.spec.check_options(options or {})
        self.model_name, self.column_asked = model, column
        self.batch_size, self.device, self.fast_cpu = batch_size, device, fast_cpu
        self.rows_per_task = rows_per_task
        self.kind = ray_io.output_kind(output)
        self._same_machine, self.worker_env = same_machine, dict(worker_env or {})
        self.load_progress, self.worker = load_progress, worker
        self.started = False
        self.results: dict[int, dict[str, Any]] = {}
        self.rows_written: int | None = 0  # None: a folder of parts from files Ray read (not counted)
        self.notes: list[str] = []

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.result_columns(self.options)

    # --- setting up -------------------------------------------------------------------------

    def __enter__(self) -> RayRun:
        require()
        if self.kind == FOLDER:
            ray_io.check_folder_is_empty(self.output)
        self.source: Source = ray_io.open_source(
            self.source_name, self.column_asked, self.spec.file_input, self.spec.folder_kind
        )
        self._resolve_model()
        self.started, same = connect(self.cluster.address)
        self.where = (
            f"the Ray cluster at {self.cluster.address}"
            if self.cluster.address
            else "a Ray instance started on this machine"
            if self.started
            else "the Ray instance this process runs"
        )
        try:
            self.same_machine = same if self._same_machine is None else self._same_machine
            self._configure_data()
            self.dataset, self.total = None, len(self.source.texts)
            if self.source.native:
                dataset = ray_io.read_dataset(self.source)
                # Rows in the local engine's windows, counted from the first row, as for a file.
                self.dataset = dataset.repartition(target_num_rows_per_block=self.rows_per_task, strict=True)
                # A Parquet file says how many rows it has; CSV and JSONL would have to be read twice.
                self.total = dataset.count() if self.source.reader == "parquet" else None
            import ray

            alive = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
            self.plan = plan_workers(alive, self.cluster.workers, self.cluster.gpus_per_worker)
            self.model, self.shipped, self.download = self._prepare_model()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the Ray instance this run started (a cluster or an instance found running stays)."""
        if self.started:
            import ray

            self.started = False
            ray.shutdown()

    def _configure_data(self) -> None:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = self.kind == FOLDER  # else Pipedesk's bar, fed batch by batch
        context.print_on_execution_start = False
        context.raise_original_map_exception = True
        context.max_consecutive_actor_init_deaths = RETRIES
        # A file with fewer windows than workers leaves some idle: nothing to warn a person about.
        warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
        console = [h for h in logging.getLogger("ray.data").handlers if h.get_name() == "console"]
        for handler in console:  # Ray Data's own log lines (its log file keeps them)
            handler.setLevel(logging.CRITICAL)

    def _resolve_model(self) -> None:
        """What the model name means, said before Ray starts (a name that is no model fails at once)."""
        from desktop.engine.runtime import Runtime
        from desktop.models.compat import check_fits

        self.runtime = Runtime(device=self.device)
        holds = self.source.table.holds if self.source.table is not None else "text"
        self.kind_loaded = self.spec.kind_for(self.spec.file_inputs("", holds))
        self.target = self.runtime.resolve(self.spec, self.model_name, self.kind_loaded)
        if isinstance(self.target, ModelRef):
            self.display = self.target.display
        else:
            self.display = self.target.name
            check_fits(self.kind_loaded, self.target, self.display)

    def _prepare_model(self) -> tuple[str | None, ShippedModel | None, bool]:
        """(the name workers load, the shipped pack, whether workers download from the Hub): on this
        machine the driver downloads a Hub model once; elsewhere each machine does, and a model that
        is only here is packed once and shipped through Ray's object store."""
        from desktop.models.compat import check_fits

        target = self.target
        if isinstance(target, ModelRef):
            if self.same_machine:
                folder = self.runtime.store.ensure(target, self.load_progress)
                check_fits(self.kind_loaded, folder, self.display)
            return self.model_name, None, not self.same_machine
        if self.same_machine:
            return self.model_name, None, False
        import ray

        data, digest = pack_model(target)
        return None, ShippedModel(target.name, digest, [ray.put(data)]), False

    def _worker_env(self) -> dict[str, str]:
        from desktop.models.state import offline_mode

        env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        if offline_mode():
            env["HF_HUB_OFFLINE"] = "1"
        if self.same_machine and os.environ.get("PIPEDESK_HOME"):
            env["PIPEDESK_HOME"] = os.environ["PIPEDESK_HOME"]
        return {**env, **self.worker_env}

    # --- running ----------------------------------------------------------------------------

    def _mapped(self, dataset: Any, **worker: Any) -> Any:
        """``dataset`` through a fixed pool of :class:`FileWorker` actors, one batch of rows per call."""
        from ray.data import ActorPoolStrategy

        plan = self.plan
        arguments = {
            "batch_size": self.rows_per_task,
            "batch_format": "pyarrow",
            "compute": ActorPoolStrategy(size=plan.workers, max_tasks_in_flight_per_actor=1),
            "num_cpus": plan.cpus,
            "num_gpus": plan.gpus or None,
            "runtime_env": {"env_vars": self._worker_env()},
            "fn_constructor_args": (self.task, self.model, self.options),
            "fn_constructor_kwargs": {
                "device": self.device or (None if plan.gpus else "cpu"),
                "batch_size": self.batch_size,
                "fast_cpu": self.fast_cpu,
                "threads": None if plan.gpus else plan.threads,
                "shipped": self.shipped,
                "download": self.download,
                "holds": self.source.table.holds if self.source.table is not None else "text",
                **worker,
            },
        }
        # Ray Data restarts dead actors and retries their batch forever by default; bound both, so a
        # batch that kills its worker every time ends the run. Ray 2.60 deprecates these keywords
        # without a replacement; a Ray that no longer takes them keeps its own defaults.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*", category=DeprecationWarning)
            try:
                return dataset.map_batches(
                    self.worker, max_restarts=RETRIES, max_task_retries=RETRIES, **arguments
                )
            except TypeError:  # pragma: no cover - a later Ray
                return dataset.map_batches(self.worker, **arguments)

    def __iter__(self) -> Iterator[RayProgress]:
        import ray.exceptions

        try:
            yield from self._run()
        except Exception as exc:
            if isinstance(exc, UserError) and not isinstance(exc, ray.exceptions.RayError):
                raise
            raise _in_words(exc) from None

    def _run(self) -> Iterator[RayProgress]:
        source = self.source
        if source.native and self.kind == FOLDER:
            names = result_names(_header(source.columns), self.columns, self.task)
            mapped = self._mapped(
                self.dataset, text_column=source.column, output="columns", names=names, keep_notes=False
            )
            mapped.write_parquet(self.output)
            self.rows_written = self.total
            return
            yield  # a generator, with no step: Ray Data shows the progress of the parts it writes
        if source.native:
            mapped = self._mapped(self.dataset, text_column=source.column)
        else:
            mapped = self._mapped(
                _text_blocks(source.texts, self.rows_per_task), text_column=TEXT, drop=(TEXT,)
            )
        rows: list[list[Any]] = []
        done = 0
        for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
            values = [_loads(text) for text in batch.column(VALUES).to_pylist()]
            numbers = (
                batch.column(ROW).to_pylist()
                if ROW in batch.column_names
                else range(done, done + len(values))
            )
            self.results.update(zip(numbers, values, strict=True))
            if source.native:
                inputs = batch.select(source.columns).to_pylist()
                rows.extend([row[name] for name in source.columns] for row in inputs)
            notes = [n for text in batch.column(NOTES).to_pylist() if text for n in _loads(text)]
            fresh = [note for note in notes if note not in self.notes]
            self.notes.extend(fresh)
            done += len(values)
            yield RayProgress(len(values), done, self.total, fresh)
        table = source.table or Table(source.name, "dataset", source.columns, rows)  # typed cells
        self._write(table)
        self.rows_written = len(table.rows)

    def _write(self, table: Any) -> None:
        if self.kind == FLAT:
            write_results(table, self.results, self.columns, Path(self.output).expanduser(), prefix=self.task)
            return
        arrow = ray_io.table_as_arrow(table, self.results, self.columns, self.task)
        if self.kind == PARQUET:
            ray_io.write_parquet_file(arrow, self.output)
            return
        import ray.data

        chunks = [arrow.slice(i, self.rows_per_task) for i in range(0, arrow.num_rows, self.rows_per_task)]
        ray.data.from_arrow(chunks).write_parquet(self.output)


def _header(columns: list[str]) -> Table:
    return Table("", "", columns, [])


def _text_blocks(texts: list[str], rows: int) -> Any:
    """The texts as a dataset of blocks of ``rows`` rows, each with its row number."""
    import pyarrow as pa
    import ray.data

    blocks = [
        pa.table(
            {ROW: pa.array(range(start, start + len(chunk)), pa.int64()), TEXT: pa.array(chunk, pa.string())}
        )
        for start in range(0, len(texts), rows)
        for chunk in [texts[start : start + rows]]
    ]
    return ray.data.from_arrow(blocks)


def _loads(text: str) -> Any:
    import json

    return json.loads(text)


def _in_words(exc: BaseException) -> UserError:
    """A failed Ray job as one sentence: a worker's own refusal as it was said, a dead worker as such."""
    import ray.exceptions

    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        return UserError(first_line(cause))
    if isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)):
        return UserError(
            f"A Ray worker died and could not be replaced after {RETRIES} tries ({first_line(exc)}). "
            "Check the workers' memory and logs, then run again."
        )
    return UserError(f"The Ray job failed: {type(cause or exc).__name__}: {first_line(cause or exc)}")
