"""What the Batch tab shows, as plain data: a browser session's file and run (:class:`Session`), the
results table, the chart, the export. Pure Python with pandas, no Gradio; runs on Gradio's workers.
"""

from __future__ import annotations

import html
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from desktop.batch.writer import write_results
from desktop.engine.client import Door
from desktop.engine.filerun import BatchRun, count_chart, task_spec
from desktop.errors import UserError
from desktop.files.audio import AUDIO_EXTENSIONS
from desktop.files.images import IMAGE_EXTENSIONS
from desktop.files.reader import FOLDER_FILES, files_table, kind_of_files, read_folder, read_table
from desktop.files.table import Table
from desktop.tasks import TASKS

EXPORTS = {"CSV": ".csv", "XLSX": ".xlsx", "JSONL": ".jsonl"}
SHOWN_ROWS = 200  # the results table shows the first rows; the export has them all
TABLE_TYPES = [".csv", ".tsv", ".xlsx", ".jsonl", ".txt"]
CHART_BARS = 20  # the most frequent values get a bar each; the rest are counted as "other"


@dataclass
class Session:
    """One browser session's file (or photos, or folder) and latest run."""

    table: Table
    column: str = ""
    task: str = ""
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    run: BatchRun | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    running: bool = False
    folder: Path | None = None  # where this session's exports are written
    source: Path | None = None  # a folder on this computer the rows come from (the owner's)
    upload: str | None = None  # the uploaded table file (read again for another sheet)


def current_session(session: Session | None) -> Session:
    """The session's file, or a UserError saying what to hand in first."""
    if not isinstance(session, Session):
        raise UserError(
            "Upload a file first (CSV, TSV, XLSX, JSONL or TXT with one text per line), or photos, "
            "or recordings."
        )
    return session


def file_tasks() -> list[tuple[str, str]]:
    """(title, id) of every task that runs on files, as the Task list shows them."""
    return [(spec.title, spec.id) for spec in TASKS.values() if spec.file_input is not None]


def task_options(task: str, keys: list[tuple[str, str]], values: tuple[Any, ...]) -> dict[str, Any]:
    """The values of ``task``'s own option controls, by option name (``keys``: (task, option) per control)."""
    return {name: value for (owner, name), value in zip(keys, values, strict=True) if owner == task}


def shows_column(task: str) -> bool:
    """Whether ``task`` reads one text column (the picker is shown) or whole rows (hidden)."""
    return not task_spec(task).reads_rows


#: What a person calls a file of each kind the rows can hold.
WHAT = {"text": "a table of texts", "image": "photos", "audio": "recordings"}


def check_rows_fit(table: Table, task: str) -> None:
    """UserError when the rows cannot go through ``task``: photos through a text task, a table of
    texts through Objects or Transcribe (in the tab, files come from uploads and folders only, never
    from names typed in a table)."""
    spec = task_spec(task)
    if table.holds == "text":
        if spec.file_input in ("image", "audio"):
            raise UserError(
                f"{spec.title} reads {WHAT[spec.file_input]}: upload them, or choose a folder of them."
            )
        return
    if spec.folder_kind != table.holds:
        takes = WHAT["text"] if spec.folder_kind is None else WHAT[spec.folder_kind]
        raise UserError(
            f"{spec.title} reads {takes}, not {WHAT[table.holds]}: choose a task that takes them."
        )


# --- pure helpers (tested without a browser) ----------------------------------------------


def results_frame(session: Session, limit: int = SHOWN_ROWS) -> pd.DataFrame:
    """The first ``limit`` rows: number, the text (or the file) cut short, the result columns
    (entities and objects as words, long answers cut short), then the note, so a row's text stands
    beside its label and a long note never pushes them out of view."""
    table, columns = session.table, list(session.run.columns if session.run else ())
    index = table.column_index(session.column)
    rows = []
    for number, row in enumerate(table.rows[:limit]):
        result = session.results.get(number)
        text = row[index] if index < len(row) else ""
        if table.holds != "text" and session.source is not None:
            text = _relative(text, session.source)
        values = ["" if result is None else _cell(result.get(c)) for c in columns]
        note = "…" if result is None else str(result.get("note") or "")
        rows.append([number + 1, _short(text, 80), *values, note])
    return pd.DataFrame(rows, columns=["#", session.column, *columns, "note"])


def column_widths(frame: pd.DataFrame) -> list[str]:
    """Widths for the results table: the number narrow, the text a third, the results the rest
    shared, the note a fifth (it wraps), so a row's text, its label and its note are in view."""
    results = max(1, len(frame.columns) - 3)
    share = f"{44 / results:.1f}%"
    return ["6%", "30%", *([share] * results), "20%"] if len(frame.columns) > 3 else []


def chart_counts(session: Session) -> Counter[str] | None:
    """How many rows got each label (or how many entities of each type); None: no chart for the task."""
    if session.run is None or session.run.spec.chart_title is None:
        return None
    return count_chart(session.run.spec, session.results.values())


def chart_html(counts: Counter[str], title: str, what: str) -> str:
    """A horizontal bar chart: bars start at 0, lengths proportional to the counts, each labelled
    with its count (most frequent first; past ``CHART_BARS`` values the rest are one "other" bar)."""
    ordered = counts.most_common()
    if len(ordered) > CHART_BARS:
        rest = sum(n for _, n in ordered[CHART_BARS - 1 :])
        ordered = [*ordered[: CHART_BARS - 1], ("other", rest)]
    top = max((n for _, n in ordered), default=0)
    rows = []
    for name, count in ordered:
        share = 100.0 * count / top if top else 0.0
        label = html.escape(str(name))
        rows.append(
            f'<div class="pd-bar" role="listitem" data-label="{label}" data-count="{count}">'
            f'<span class="pd-bar-name" title="{label}">{label}</span>'
            f'<span class="pd-bar-track"><span class="pd-bar-fill" style="width:{share:.2f}%"></span></span>'
            f'<span class="pd-bar-count">{count:,}</span></div>'
        )
    body = "".join(rows) or '<p class="pd-bar-empty">No results yet.</p>'
    return (
        f'<figure class="pd-chart" aria-label="{html.escape(title)}"><figcaption>{html.escape(title)} '
        f'<span class="pd-chart-axis">({html.escape(what)}, count)</span></figcaption>'
        f'<div role="list">{body}</div></figure>'
    )


def export(session: Session, fmt: str, root: Path) -> Path:
    """Write the input with the result columns appended, for download, under ``root`` (the app's
    output folder)."""
    if session.folder is None:
        session.folder = root / "pipedesk-batch" / uuid.uuid4().hex
    stem = Path(session.table.name).stem or "results"
    target = session.folder / f"{stem}-{session.task}{EXPORTS.get(fmt, '.csv')}"
    return write_results(session.table, session.results, session.run.columns, target, prefix=session.task)


def _show(value: Any) -> Any:
    if isinstance(value, list):  # NER's entities, or the objects found on a photo
        return ", ".join(_item(e) for e in value if isinstance(e, dict))
    return "" if value is None else value


def _item(found: dict[str, Any]) -> str:
    if "entity" in found:
        return f"{found.get('entity')} ({found.get('type')})"
    return f"{found.get('label')} ({float(found.get('score') or 0):.0%})"


def _relative(path: str, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return Path(path).name


def _cell(value: Any) -> Any:
    shown = _show(value)
    return _short(shown, 48) if isinstance(shown, str) else shown


def _short(value: Any, limit: int = 300) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table_types(local: bool) -> list[str]:
    """The table files the tab reads: Parquet only in the owner's own app (visitors hand in the
    formats whose readers check every size the file declares)."""
    return [*TABLE_TYPES, *([".parquet"] if local else [])]


def read_handed_in(paths: list[str], door: Door, local: bool, sheet: str | None = None) -> Table:
    """What was uploaded, as rows: one table file (of a workbook, ``sheet``), or photos, or
    recordings (one row each). UserError for a mix, or a file of no kind the tab reads."""
    suffixes = {Path(p).suffix.lower() for p in paths}
    if len(paths) == 1 and suffixes <= {*TABLE_TYPES, ".parquet"}:
        if not suffixes <= set(table_types(local)):
            raise UserError(
                "Parquet files are read in the app on the computer it runs on, not over the network."
            )
        return read_table(paths[0], limits=door.limits, sheet=sheet)
    kind = kind_of_files(paths)
    if kind is None:
        raise not_handed_in()
    return files_table(paths, kind)


def not_handed_in(name: str | None = None) -> UserError:
    """The tab's refusal of what it does not read (``name``: a file refused by its name alone)."""
    what = "Hand in one table file (CSV, TSV, XLSX, JSONL or TXT), or photos, or recordings"
    if name:
        return UserError(f"{Path(name).name} is none of these: {what[0].lower()}{what[1:]}.")
    return UserError(f"{what}: not a mix, and not several tables at once.")


def taken_extensions(local: bool) -> list[str]:
    """Every file name ending the tab takes: tables (Parquet in the owner's app only), photos,
    recordings."""
    return [*table_types(local), *sorted(IMAGE_EXTENSIONS), *sorted(AUDIO_EXTENSIONS)]


def read_any_folder(text: str) -> tuple[Table, Path]:
    """A folder on this computer (the owner's): its photos, else its recordings, one row each."""
    folder = Path((text or "").strip()).expanduser()
    if not str(text or "").strip():
        raise UserError("Type the folder's path (or choose it) first.")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder on this computer.")
    for kind, extensions in (("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)):
        if any(p.is_file() and p.suffix.lower() in extensions for p in folder.rglob("*")):
            table = read_folder(folder, extensions, FOLDER_FILES[kind])
            table.holds = kind
            return table, folder
    raise UserError(f"{folder} holds no photos and no recordings.")
