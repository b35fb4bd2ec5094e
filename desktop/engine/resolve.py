"""The one place a model name becomes a model: a Hub reference or a folder on this computer.

Two policies. ``LOCAL`` (the owner, on this computer) accepts nothing (the task's default), a
label from a list, a Hub id, the name of an imported or added model, or the path of a model
folder. ``GUEST`` (LAN visitors, public deployments) accepts only models already installed here,
by label, Hub id or imported name; anything else gets one sentence that says nothing about this
computer (no folder is looked at, so a name cannot probe the disk). Pure lookups: nothing is
written (usage is recorded when a model is loaded).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from desktop.errors import ModelError
from desktop.models import catalog
from desktop.models.ref import ModelRef, looks_like_hub_id

NOT_SHARED = (
    "Only the models already installed on the computer sharing Pipedesk can be used here; "
    "ask its owner to download this one."
)


#: The longest model name or folder path looked at (Windows paths reach 32,767 at most).
MAX_NAME = 4096


class Policy(enum.Enum):
    LOCAL = "local"
    GUEST = "guest"


def known_models() -> dict[str, ModelRef]:
    from desktop.tasks import known_models as known

    return known()


def resolve(
    spec: Any, name: str | None, kind: str, store: Any, policy: Policy = Policy.LOCAL
) -> ModelRef | Path:
    """What ``name`` means for ``spec`` (inputs of ``kind``) under ``policy``; ModelError if nothing."""
    if name is not None and not isinstance(name, str):
        raise ModelError("A model is chosen by its name (text), not by a number or a list.")
    typed = (name or "").strip()
    if len(typed) > MAX_NAME:
        raise ModelError(f"That model name is {len(typed):,} characters long: no model has such a name.")
    if spec.is_automatic(typed):
        return _allowed(spec.default_for(kind), store, policy)
    for ref in (*spec.models, *known_models().values()):
        if ref.repo and typed in (ref.repo, ref.label):
            return _allowed(ref, store, policy)
    root = store.root
    imported = catalog.imported(root).get(typed)
    if imported:
        folder = Path(imported["path"])
        return folder if folder.is_absolute() else root / folder
    custom = catalog.custom(root).get(typed)
    if custom:
        return _allowed(ModelRef(typed, custom.get("revision", "main")), store, policy)
    if policy is Policy.GUEST:
        if looks_like_hub_id(typed) and "/" in typed:
            return _allowed(ModelRef(typed, "main"), store, policy)
        raise ModelError(NOT_SHARED)
    return _local_name(typed)


def _allowed(ref: ModelRef, store: Any, policy: Policy) -> ModelRef:
    if policy is Policy.GUEST and store.local_path(ref) is None:
        raise ModelError(f"{ref.display} is not installed here. {NOT_SHARED}")
    return ref


def _local_name(name: str) -> ModelRef | Path:
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or name.startswith((".", "~")) or candidate.is_dir():
        if not candidate.is_dir():
            raise ModelError(f"The folder {name} does not exist.")
        if not (candidate / "config.json").is_file():
            raise ModelError(
                f"The folder {name} is not a model: it has no config.json "
                "(save one with save_pretrained, or pick a Hub model)."
            )
        return candidate.resolve()
    if looks_like_hub_id(name) and "/" in name:
        return ModelRef(name, "main")
    raise ModelError(
        f"There is no model called {name!r}: pick one from the task's list, or give a Hub id "
        "(owner/name), the name of an imported model or the path of a model folder."
    )


def ref_for(name: str, store: Any) -> ModelRef | None:
    """The Hub reference ``name`` means (a label, a task model, an added or any Hub id), or None for
    imported names and anything else (the Models tab and ``pipedesk models``)."""
    name = name.strip()
    for ref in known_models().values():
        if name in (ref.repo, ref.label):
            return ref
    root = store.root
    if name in catalog.imported(root):
        return None
    entry = catalog.custom(root).get(name)
    if entry:
        return ModelRef(name, entry.get("revision", "main"))
    if looks_like_hub_id(name) and "/" in name:
        return ModelRef(name, "main")
    return None
