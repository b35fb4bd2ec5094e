"""What every "Model" list shows: each model with its state, and which one is picked.

A task's list holds the task's own models, then the models imported or added
for it, each labelled with what a person needs to know before running it
("ready", "download, about 268 MB"). The value of an entry is always the name
the door resolves (a Hub id or an imported name), so labels can change
freely. The pick is the model last used in that task (remembered in the
settings) while it is still listed, else the default when it is on disk, else
the first ready model, else the default (it downloads on first use).

Pure functions over the model store and the settings (no Gradio): called on
Gradio's worker threads when a page opens, a tab is shown or the models change.
"""

from __future__ import annotations

from typing import Any

from desktop import settings
from desktop.fmt import human_size
from desktop.models import DAMAGED, DOWNLOADING, INCOMPLETE, READY, catalog, offline_mode
from desktop.tasks.spec import ModelRef, TaskSpec

READY_WORD = "ready"


def state_text(status: str, ref: ModelRef | None = None) -> str:
    """'ready', 'download, about 268 MB', 'download incomplete'... for a model of that status."""
    if status == READY:
        return READY_WORD
    if status == DOWNLOADING:
        return "downloading…"
    if status == INCOMPLETE:
        return "download incomplete"
    if status == DAMAGED:
        return "damaged: repair it in Models"
    if ref is not None and ref.size_mb:
        return f"download, about {human_size(ref.size_mb * 1_000_000)}"
    return "download on first use"


def _entries(spec: TaskSpec, store: Any, task: str | None = None) -> list[tuple[str, str, bool]]:
    """(label, value, ready) for every model of ``spec`` (imported/added ones: for ``task``, by
    default the spec's own id), in list order."""
    task = task or spec.id
    rows: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    for ref in spec.models:
        seen.add(ref.repo)
        if _is_pseudo(ref.repo):
            rows.append((ref.display, ref.repo, False))  # a pseudo-model such as classify's "auto"
            continue
        status = store.status(ref)
        rows.append((f"{ref.display} — {state_text(status, ref)}", ref.repo, status == READY))
    root = store.root
    for name, entry in catalog.imported(root).items():
        if entry.get("task") == task and name not in seen:
            seen.add(name)
            rows.append((f"{name} (imported) — {READY_WORD}", name, True))
    for repo, entry in catalog.custom(root).items():
        if entry.get("task") == task and repo not in seen:
            seen.add(repo)
            status = store.status(ModelRef(repo, entry.get("revision", "main")))
            rows.append((f"{repo} — {state_text(status)}", repo, status == READY))
    return rows


def choices(
    spec: TaskSpec, store: Any, task: str | None = None, installed_only: bool = False
) -> list[tuple[str, str]]:
    """(label, value) pairs for the task's Model list (``installed_only``: what a LAN visitor may use,
    and in Offline mode what the owner may: nothing that would need a download)."""
    return [
        (label, value)
        for label, value, ready in _entries(spec, store, task)
        if ready or not installed_only or _is_pseudo(value)
    ]


def remembered(task: str) -> str | None:
    """The model last used in ``task``'s tab, if any."""
    return (settings.load().last_models or {}).get(task)


def remember(task: str, model: str | None) -> None:
    """Save ``model`` as the one last used in ``task`` (the owner's app only; never a visitor)."""
    model = (model or "").strip()
    if not model or remembered(task) == model:
        return
    last = dict(settings.load().last_models or {})
    last[task] = model
    settings.update(last_models=last)


def pick(
    spec: TaskSpec,
    store: Any,
    current: str | None = None,
    remember_last: bool = True,
    task: str | None = None,
) -> str:
    """The entry to select: ``current`` (what the person chose or typed) if any, else the model last
    used while it is still listed, else the default if it is on disk, else the first ready model,
    else the default (it downloads on first use)."""
    if current and current.strip():
        return current
    entries = _entries(spec, store, task)
    last = remembered(task or spec.id) if remember_last else None
    if last and last in [value for _label, value, _ready in entries]:
        return last
    default = spec.default_model.repo
    ready = [value for _label, value, is_ready in entries if is_ready]
    if _is_pseudo(default) or default in ready or not ready:
        return default
    return ready[0]


def _values(spec: TaskSpec, store: Any, task: str | None) -> set[str]:
    return {value for _label, value, _ready in _entries(spec, store, task)}


def _is_pseudo(value: str) -> bool:
    """True for a choice that is not a model (classify's automatic pick): Hub ids have a slash."""
    return "/" not in value


def update(
    spec: TaskSpec,
    store: Any,
    current: str | None = None,
    local: bool = True,
    task: str | None = None,
) -> dict[str, Any]:
    """A ``gr.update``-shaped dict: fresh choices and the pick. ``local`` False is a LAN visitor's
    list: installed models only, and the owner's last choice is not used. In Offline mode the owner's
    lists hold the installed models only too (a name the owner typed stays as typed)."""
    offline = local and offline_mode()
    listed = choices(spec, store, task, installed_only=not local or offline)
    value: str | None = pick(spec, store, current, remember_last=local, task=task)
    # What the owner typed (a folder, a Hub id of no list) stays; a "download" entry does not.
    typed = local and bool(current and current.strip()) and current not in _values(spec, store, task)
    if (not local or offline) and not typed and value not in {v for _label, v in listed}:
        value = listed[0][1] if listed else None  # a visitor picks among what is installed
    return {"__type__": "update", "choices": listed, "value": value}
