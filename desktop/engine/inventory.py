"""Every model Pipedesk knows, with its status: what the Models tab and ``pipedesk models list`` show.

Known models are the tasks' defaults and alternatives (pinned revisions),
the Hub ids the user added, and the folders the user imported. Everything
here reads the disk only (no network), so listing is quick and works offline.
Runs on the calling thread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop.errors import ModelError
from desktop.models import DAMAGED, READY, ModelStore, bundled, catalog, looks_like_hub_id
from desktop.models.ref import ModelRef

#: Where an entry comes from.
TASK_MODEL, CUSTOM, IMPORTED, BUNDLED = "task model", "added from the Hub", "imported", "inside the app"


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model list."""

    id: str  # the Hub id, or the imported name
    label: str
    tasks: tuple[str, ...]
    source: str
    status: str
    size: int
    last_used: float | None
    revision: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        return data


def task_kinds(task: str) -> tuple[str, ...]:
    """The model kinds that fit the task ``task`` (classify takes text or image classifiers)."""
    from desktop.tasks import get

    return get(task).kinds()


def check_fits_task(task: str, folder: Path, display: str) -> None:
    """Refuse a model folder that fits none of the task's kinds, with the reason."""
    from desktop.models.compat import check_fits_any

    check_fits_any(task_kinds(task), folder, display)


def import_folder(
    source: Path,
    task: str,
    name: str | None = None,
    root: Path | None = None,
    progress: Any = None,
) -> tuple[str, Path]:
    """Copy a model folder in for ``task`` (see ``catalog.import_folder``): it must fit one of the
    task's kinds, and its name may not be a task model's id or label."""
    from desktop.tasks import get, known_models

    reserved = {value for ref in known_models().values() for value in (ref.repo, ref.label)}
    return catalog.import_folder(Path(source), task, get(task).kinds(), name, root, progress, reserved)


def guess_task(folder: Path, display: str) -> str:
    """The first task a model folder fits, or "" when it fits none."""
    from desktop.tasks import TASKS

    for task in TASKS:
        try:
            check_fits_task(task, folder, display)
            return task
        except ModelError:
            continue
    return ""


def install(store: ModelStore, ref: ModelRef, task: str | None, progress: Any = None) -> Path:
    """Download ``ref`` if needed, check it fits ``task``, and list it when no task names it.

    A model that does not fit is refused with the reason; if this call downloaded it, it is removed.
    """
    from desktop.tasks import known_models

    known = ref.repo in known_models()
    was_there = store.local_path(ref) is not None
    folder = store.ensure(ref, progress)
    if task:
        try:
            check_fits_task(task, folder, ref.display)
        except ModelError:
            if not known and not was_there:
                store.remove(ref)  # not for this task: nothing is kept
            raise
    if not known:
        catalog.add_custom(ref.repo, task or guess_task(folder, ref.display), ref.revision, store.root)
    return folder


def _task_models() -> dict[str, tuple[ModelRef, list[str]]]:
    from desktop.tasks import TASKS, known_models

    found: dict[str, tuple[ModelRef, list[str]]] = {}
    for repo, ref in known_models().items():
        tasks = [spec.id for spec in TASKS.values() if any(r.repo == repo for r in spec.models)]
        found[repo] = (ref, tasks)
    return found


def ref_for(name: str, root: Path | None = None) -> ModelRef | None:
    """The Hub reference ``name`` (a label, a Hub id, a custom id) means, or None for imported names."""
    name = name.strip()
    for repo, (ref, _tasks) in _task_models().items():
        if name in (repo, ref.label):
            return ref
    if name in catalog.imported(root):
        return None
    entry = catalog.custom(root).get(name)
    if entry:
        return ModelRef(name, entry.get("revision", "main"))
    if looks_like_hub_id(name) and "/" in name:
        return ModelRef(name, "main")
    return None


def entries(store: ModelStore) -> list[ModelEntry]:
    """Every known model: task models first (in task order), then added Hub ids, then imported ones."""
    root = store.root
    used = catalog.usage(root)
    rows: list[ModelEntry] = []
    for ref, tasks in _task_models().values():
        rows.append(_hub_entry(store, ref, tuple(tasks), TASK_MODEL, used))
    bundle = bundled.bundle_models_dir()
    for folder in sorted(bundle.iterdir()) if bundle else []:
        repo = folder.name.replace("--", "/", 1)
        if (folder / "config.json").is_file() and repo not in {r.id for r in rows}:
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            rows.append(ModelEntry(repo, repo, (), BUNDLED, READY, size, used.get(repo)))
    for repo, entry in catalog.custom(root).items():
        if repo not in {r.id for r in rows}:
            ref = ModelRef(repo, entry.get("revision", "main"))
            rows.append(_hub_entry(store, ref, (entry.get("task", ""),), CUSTOM, used))
    for name, entry in catalog.imported(root).items():
        folder = _imported_folder(root, entry)
        intact = (folder / "config.json").is_file() and all(
            (folder / rel).is_file() and (folder / rel).stat().st_size == size
            for rel, size in entry.get("files", {}).items()
        )
        rows.append(
            ModelEntry(
                id=name,
                label=name,
                tasks=(entry.get("task", ""),),
                source=IMPORTED,
                status=READY if intact else DAMAGED,
                size=sum(entry.get("files", {}).values()),
                last_used=used.get(name),
            )
        )
    return rows


def _imported_folder(root: Path, entry: dict[str, Any]) -> Path:
    folder = Path(entry["path"])
    return folder if folder.is_absolute() else root / folder


def _hub_entry(
    store: ModelStore, ref: ModelRef, tasks: tuple[str, ...], source: str, used: dict[str, float]
) -> ModelEntry:
    inside = bundled.bundled_path(ref)
    return ModelEntry(
        id=ref.repo,
        label=ref.display,
        tasks=tasks,
        source=BUNDLED if inside else source,
        status=store.status(ref),
        size=sum(p.stat().st_size for p in inside.rglob("*") if p.is_file())
        if inside
        else store.size_on_disk(ref),
        last_used=used.get(ref.repo),
        revision=ref.revision,
    )


def cache_size(store: ModelStore) -> int:
    """Bytes everything under the models folder takes (links counted once)."""
    root = store.root
    if not root.is_dir():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
