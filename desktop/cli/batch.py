"""``pipedesk batch TASK --input FILE --output FILE``: a task over every row of a file.

Runs on the main thread. Finished rows go to a journal next to the output as
they are computed (``OUTPUT.partial.jsonl``), so Ctrl+C or a crash loses at
most the batch in flight and ``--resume`` continues where the run stopped.
The output, written at the end, has the input's rows in input order with the
result columns appended. ``--engine ray`` runs the same steps on Ray workers
(:mod:`desktop.batch.ray_engine`); Ray is imported only then.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from desktop.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``batch`` and one sub-command per text task (with that task's options)."""
    from desktop.cli.common import add_task_options
    from desktop.tasks import TASKS

    batch = subparsers.add_parser(
        "batch",
        help="run a task over every row of a CSV, TSV, XLSX, JSONL or TXT file",
        description="Analyse a whole file. Output rows are in input order, with the result columns "
        "appended. Results are saved as they are computed: after an interruption, run the same "
        "command with --resume. --engine ray spreads the rows over Ray workers (this machine's "
        'cores and GPUs, or a cluster); it needs pip install "pipedesk[cluster]".',
    )
    tasks = batch.add_subparsers(title="tasks", metavar="TASK", required=True)
    for spec in TASKS.values():
        if not spec.file_input:
            continue
        task = tasks.add_parser(spec.id, help=spec.title, description=spec.description)
        task.add_argument(
            "--input",
            "-i",
            required=True,
            metavar="FILE",
            help=(
                "a folder of recordings, or a CSV, XLSX or TXT file listing them (one file per row; "
                "names relative to the list's folder)"
                if spec.file_input == "audio"
                else "CSV, TSV, XLSX, JSONL, Parquet or TXT (one text per line)"
                + (
                    ", or a folder of photos (one row each, subfolders too)"
                    if spec.folder_kind == "image"
                    else ""
                )
            )
            + "; with --engine ray also a folder of Parquet/CSV/JSONL files or a URI such as "
            "s3://bucket/reviews/",
        )
        if not spec.reads_rows:  # a task that reads whole rows names its columns itself ({review})
            task.add_argument(
                "--column",
                "-c",
                default=None,
                metavar="COL",
                help="the column holding the texts (default: the column that holds text, guessed)",
            )
        task.add_argument(
            "--sheet",
            default=None,
            metavar="NAME",
            help="the sheet of a workbook to read (default: the first with text)",
        )
        task.add_argument(
            "--output",
            "-o",
            required=True,
            metavar="FILE",
            help="where to write: .csv, .tsv, .xlsx, .jsonl or .parquet; with --engine ray also a "
            "folder of Parquet parts (a name ending in /)",
        )
        task.add_argument("--model", default=None, help="a model label, Hub id, imported name or folder")
        task.add_argument(
            "--batch-size",
            type=int,
            default=None,
            metavar="N",
            help="at most N rows per batch (default: by a token budget)",
        )
        task.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
        task.add_argument(
            "--resume", action="store_true", help="continue an interrupted run without redoing finished rows"
        )
        task.add_argument(
            "--fast-cpu",
            action="store_true",
            help="int8 weights for classification and NER models on the CPU (faster, nearly the same results)",
        )
        _add_ray_flags(task)
        add_task_options(task, spec)
        task.set_defaults(func=cmd_batch, task=spec.id)


def _add_ray_flags(task: argparse.ArgumentParser) -> None:
    ray = task.add_argument_group('Ray engine (pip install "pipedesk[cluster]")')
    ray.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): this process; ray: Ray workers on this machine or a cluster",
    )
    ray.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="auto (the cluster this machine belongs to) or ray://host:10001; default: start Ray here",
    )
    ray.add_argument(
        "--workers", type=int, default=None, metavar="N", help="model-holding workers (default: by resources)"
    )
    ray.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="GPUs each worker holds, e.g. 1 or 0.5 (default: 1 when there are GPUs)",
    )


def _quiet_libraries() -> None:
    """The bar is the progress report: no weight-loading bars or generation advice on the terminal."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from desktop import logs
    from desktop.batch.journal import Journal, file_fingerprint, journal_path
    from desktop.batch.rows import file_values
    from desktop.batch.writer import export_format, write_results
    from desktop.cli.common import terminal_progress
    from desktop.engine.filerun import task_spec
    from desktop.engine.start import open_door
    from desktop.files.reader import read_rows

    logs.setup()
    _quiet_libraries()
    if args.engine == "ray":
        return _batch_on_ray(args)
    ray_only = [
        flag for flag in ("ray_address", "workers", "gpus_per_worker") if getattr(args, flag) is not None
    ]
    if ray_only:
        flags = ", ".join("--" + flag.replace("_", "-") for flag in ray_only)
        raise UserError(f"{flags} {'goes' if len(ray_only) == 1 else 'go'} with --engine ray.")
    source, output = Path(args.input).expanduser(), Path(args.output).expanduser()
    spec = task_spec(args.task)
    _ray_reads(args.input, source, "reads", folders=spec.folder_kind is not None)
    _ray_reads(args.output, output, "writes")
    export_format(output)
    _not_the_input(source, output)
    options = {option.name: option.check(getattr(args, option.name), option.flag) for option in spec.options}
    spec.check_options(options)  # what no single flag says (a prompt with no {column}) before any reading
    table = read_rows(source, spec.file_input, spec.folder_kind, sheet=args.sheet)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    column = getattr(args, "column", None)
    if spec.reads_rows:
        column = ", ".join(spec.columns_read(table.columns, spec.check_options(options)))
    elif column is None:
        column = guessed_column(table)
        if len(table.columns) > 1:
            print(
                f"note: reading the texts from column {column!r} (choose another with --column)",
                file=sys.stderr,
            )
    else:
        column = table.columns[table.column_index(column)]
    texts = file_values(table, spec, None if spec.reads_rows else column)
    header = {
        "task": args.task,
        "model": args.model or "",
        "column": column,
        "input": file_fingerprint(source),
        "rows": len(texts),
        "options": options,
    }
    journal = Journal.open(journal_path(output), header, resume=args.resume)
    if journal.done:
        print(f"Resuming: {len(journal.done):,} of {len(texts):,} rows were already done.", file=sys.stderr)
    elif args.resume:
        print("note: there was nothing to resume; starting from the first row.", file=sys.stderr)

    run = open_door(args.device).run_file(
        args.task,
        texts,
        args.model,
        batch_size=args.batch_size,
        fast_cpu=args.fast_cpu,
        options=options,
        skip=set(journal.done),
        load_progress=terminal_progress(),
        file_columns=table.columns,
        holds=table.holds,
    )
    started = time.perf_counter()
    bar = tqdm(
        total=len(texts),
        initial=len(journal.done),
        unit="row",
        desc=f"{args.task} ({run.model})",
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for event in run:
            journal.write(event.results)
            bar.update(len(event.results))
            for note in event.notes:
                bar.write(f"note: {note}", file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        journal.close()
        print(
            f"Interrupted: {len(journal.done):,} of {len(texts):,} rows are saved in {journal.path}. "
            "Run the same command with --resume to continue.",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
        journal.close()
    write_results(table, journal.done, run.columns, output, prefix=args.task)
    journal.remove()
    elapsed = time.perf_counter() - started
    print(_summary(journal.done, len(texts), output, elapsed, run), file=sys.stderr)
    return 0


def guessed_column(table: Any) -> str:
    """The column that holds the texts, or a UserError listing the columns that says how to choose."""
    try:
        return table.guess_column()
    except UserError as exc:
        raise UserError(f"{exc} Name it with --column.") from None


def _not_the_input(source: Path, output: Path) -> None:
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise UserError("--output must not be the input file: choose another name, so the input is kept.")


def _ray_reads(given: str, path: Path, what: str, folders: bool = False) -> None:
    """Folders of Parquet/CSV parts and URIs are the Ray engine's: say so rather than 'not a CSV'
    (``folders``: the task's own folder runs, of recordings or photos, are the local engine's)."""
    from desktop.batch.ray_io import is_uri

    folder = given.endswith("/") if what == "writes" else (path.is_dir() and not folders)
    if is_uri(given) or folder:
        raise UserError(
            f"{given}: the Ray engine {what} folders of Parquet, CSV or JSONL files and URIs: add "
            '--engine ray (pip install "pipedesk[cluster]").'
        )


def _batch_on_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: the same run on Ray workers; a bar fed as batches come back."""
    from tqdm import tqdm

    from desktop.batch.ray_cluster import Cluster, require
    from desktop.batch.ray_engine import RayRun
    from desktop.batch.ray_io import FOLDER, is_uri
    from desktop.cli.common import terminal_progress
    from desktop.engine.filerun import task_spec
    from desktop.fmt import duration

    require()
    if args.resume:
        raise UserError(
            "--resume works with the local engine only: the Ray engine keeps no partial results (it "
            "writes the output at the end). Run the same command without --resume."
        )
    if not (is_uri(args.input) or is_uri(args.output)):
        _not_the_input(Path(args.input).expanduser(), Path(args.output).expanduser())
    spec = task_spec(args.task)
    if spec.reads_rows:
        raise UserError(f"{args.task} runs on the local engine only for now: leave out --engine ray.")
    options = {option.name: option.check(getattr(args, option.name), option.flag) for option in spec.options}
    run = RayRun(
        args.task,
        args.input,
        args.output,
        args.model,
        column=args.column,
        options=options,
        batch_size=args.batch_size,
        device=args.device,
        fast_cpu=args.fast_cpu,
        cluster=Cluster(args.ray_address, args.workers, args.gpus_per_worker),
        load_progress=terminal_progress(),
    )
    started = time.perf_counter()
    with run:
        for warning in run.source.table.warnings if run.source.table else []:
            print(f"warning: {warning}", file=sys.stderr)
        if run.source.guessed and len(run.source.columns) > 1:
            print(
                f"note: reading the texts from column {run.source.column!r} (choose another with --column)",
                file=sys.stderr,
            )
        print(f"Ray: {run.plan.line()}, on {run.where}", file=sys.stderr)
        bar = tqdm(
            total=run.total,
            unit="row",
            desc=f"{args.task} ({run.display})",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=run.kind == FOLDER,  # Ray Data's own progress: the workers write the parts
        )
        try:
            for event in run:
                bar.update(event.rows)
                for note in event.notes:
                    bar.write(f"note: {note}", file=sys.stderr)
        except KeyboardInterrupt:
            bar.close()
            print("Interrupted: the Ray job was cancelled; nothing was written.", file=sys.stderr)
            return 130
        finally:
            bar.close()
    elapsed = time.perf_counter() - started
    if run.results:
        print(_summary(run.results, run.rows_written, args.output, elapsed, run), file=sys.stderr)
    else:
        rows = "Rows" if run.rows_written is None else f"{run.rows_written:,} rows"
        print(f"{rows} written to {args.output} in {duration(elapsed)}", file=sys.stderr)
    return 0


def _summary(
    results: dict[int, dict[str, Any]], total: int, output: Path | str, elapsed: float, run: Any
) -> str:
    from desktop.engine.filerun import count_chart
    from desktop.fmt import duration

    notes: Counter[str] = Counter()
    for values in results.values():
        note = str(values.get("note") or "")
        if note.startswith("error"):
            notes["failed"] += 1
        elif note and all(values.get(column) is None for column in run.columns):
            notes["refused"] += 1  # what a single run refuses too: empty, too short, too long...
        elif note:
            notes["with notes"] += 1
    lines = [f"{total:,} rows written to {output} in {duration(elapsed)}"]
    if notes:
        lines[0] += " (" + ", ".join(f"{n:,} {what}" for what, n in notes.items()) + ")"
    counts = count_chart(run.spec, results.values())
    if counts:
        lines.append(
            f"By {run.spec.chart_title}: " + ", ".join(f"{name} {n:,}" for name, n in counts.most_common(10))
        )
    return "\n".join(lines)
