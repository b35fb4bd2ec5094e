"""The Models folder setting: switch folders, moving the models there (with progress) or leaving them.

A move renames each part of the store (``hub``, ``manifests``, ``imported``, ``converted``,
``catalog.json``, ``usage.json``) when the new folder is on the same disk —
instant — and copies it otherwise, into hidden ``.partial`` folders that only
become real once every byte has arrived; the old copies are deleted last. The
setting changes only after the models are in place, so an interrupted move
leaves the app using the old folder, intact. Runs on the calling thread.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop import paths, settings
from desktop.errors import UserError
from desktop.fmt import human_size
from desktop.models import transfers as downloads
from desktop.models.store import ModelStore

#: What a models folder holds; nothing else in it is touched.
PARTS = ("hub", "manifests", "imported", "converted", "catalog.json", "usage.json", "last.json")


def _files(path: Path) -> list[Path]:
    if path.is_symlink() or path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]


def _same_disk(a: Path, b: Path) -> bool:
    def device(path: Path) -> int:
        while not path.exists():
            path = path.parent
        return path.stat().st_dev

    return device(a) == device(b)


def check_target(old: Path, new: Path) -> None:
    """Refuse a models folder that cannot work: inside the old one, not writable, already used."""
    if new == old:
        return
    if new.is_relative_to(old) or old.is_relative_to(new):
        raise UserError(f"The new models folder {new} cannot be inside the current one, or contain it.")
    if new.exists() and not new.is_dir():
        raise UserError(f"{new} is a file, not a folder.")
    try:
        paths.ensure(new)
        probe = new / f".pipedesk-write-test-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"Pipedesk cannot write to {new}: {exc.strerror or exc}.") from None


@dataclass(frozen=True)
class FolderChange:
    """What :func:`change_models_dir` did: the folder now used, and whether anything changed."""

    folder: Path
    changed: bool
    moved: bool

    def sentence(self, path: Callable[[Path], str] = str) -> str:
        """The one sentence the window and the command line say (``path`` formats the folder)."""
        if not self.changed:
            return f"Models are already kept in {path(self.folder)}: nothing was moved."
        done = "moved there" if self.moved else "left in the old folder"
        return f"Models folder is now {path(self.folder)}; the models were {done}."


def change_models_dir(
    new: Path,
    move: bool = True,
    store: ModelStore | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> FolderChange:
    """Use ``new`` as the models folder; with ``move`` the models already downloaded go with it.
    The folder already in use changes nothing (``changed`` is False)."""
    store = store or ModelStore()
    old = store.root.absolute()
    new = Path(new).expanduser().absolute()
    check_target(old, new)
    if new == old:
        return FolderChange(new, changed=False, moved=False)
    if store.downloading():
        raise UserError("A model is downloading: wait for it to finish (or cancel it) before moving models.")
    if move:
        _move_parts(old, new, progress)
    default = paths.default_models_dir().absolute()
    settings.update(models_dir=None if new == default else new)
    store.follow(new)
    return FolderChange(new, changed=True, moved=move)


def _move_parts(old: Path, new: Path, progress: Callable[[int, int, str], None] | None) -> None:
    parts = [name for name in PARTS if (old / name).exists() or (old / name).is_symlink()]
    clashes = [name for name in parts if (new / name).exists()]
    if clashes:
        raise UserError(
            f"{new} already holds Pipedesk models ({', '.join(clashes)}): choose an empty folder, "
            "or switch to it and leave the current models where they are."
        )
    if _same_disk(old, new):
        done: list[str] = []
        try:
            for name in parts:
                os.rename(old / name, new / name)
                done.append(name)
        except OSError:
            for name in done:  # put back what moved, so the old folder stays whole
                os.rename(new / name, old / name)
            raise
        if progress:
            progress(1, 1, f"Moved the models to {new}")
        return
    files = [f for name in parts for f in _files(old / name)]
    total = sum(f.stat().st_size for f in files)
    downloads.check_space(new, total, "the models")
    copied = 0

    def copy(src: str, dst: str) -> None:
        nonlocal copied
        shutil.copy2(src, dst)
        copied += os.path.getsize(dst)
        if progress:
            progress(copied, total, f"Moving the models · {human_size(copied)} of {human_size(total)}")

    staged = {name: new / f".{name}.partial" for name in parts}
    try:
        for name in parts:
            source, target = old / name, staged[name]
            downloads.remove_tree(target)
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, target, symlinks=True, copy_function=copy)
            else:
                copy(str(source), str(target))
        for name in parts:
            os.replace(staged[name], new / name)
    except BaseException:
        for name in parts:
            downloads.remove_tree(staged[name])
        raise
    for name in parts:
        downloads.remove_tree(old / name)
