"""Models the user added by name: imported folders and custom Hub ids.

Stored as JSON next to the models (``<models dir>/catalog.json``) so the list
moves with the models folder. An imported model is *copied* into
``<models dir>/imported/<name>`` (the USB stick it came from can go), with
the size and sha256 of every file so it can be verified offline. Read on
demand; written atomically. Runs on the calling thread.

A catalog that cannot be parsed is never overwritten: it is kept aside as
``catalog.json.damaged`` (the list starts empty) and :func:`check` says so, in
the Models tab and the command line, for as long as that copy is there. One
that cannot be read at all (permissions, a disk error) is left alone and
reported as a ModelError.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from desktop import fs
from desktop.errors import ModelError
from desktop.models import converted
from desktop.models import transfers as downloads
from desktop.models.compat import check_fits_any
from desktop.models.hub import Problem, check_file, file_hashes

log = logging.getLogger(__name__)

DAMAGED = "catalog.json.damaged"
#: Held while the catalog file is replaced or moved aside, so a damaged file is never mistaken
#: for (or moved over) one another thread has just written.
_FILE_LOCK = threading.RLock()

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,79}$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


#: Models folders opened read-only (a replica's shared store): the catalog is never written there.
_READ_ONLY: set[Path] = set()
READ_ONLY = (
    "The models folder {root} is shared read-only (pipedesk serve --models-dir): nothing is added to "
    "it, changed or removed from here. Install models from a computer that may write to it."
)


def open_read_only(root: Path) -> None:
    """From now on, nothing in this process writes the catalog or usage of the models folder ``root``."""
    with _FILE_LOCK:
        _READ_ONLY.add(Path(root).absolute())


def is_read_only(root: Path | None = None) -> bool:
    """True when the models folder ``root`` was opened read-only in this process."""
    return Path(_root(root)).absolute() in _READ_ONLY


def check_writable(root: Path | None = None) -> None:
    """ModelError (a sentence) when the models folder ``root`` is read-only in this process."""
    if is_read_only(root):
        raise ModelError(READ_ONLY.format(root=_root(root)))


def _root(root: Path | None) -> Path:
    if root is not None:
        return root
    from desktop import settings

    return settings.models_dir()


def _catalog_file(root: Path | None = None) -> Path:
    return _root(root) / "catalog.json"


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The catalog in ``raw``, or None when it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None
    sections = ("imported", "custom")
    if not isinstance(data, dict) or not all(isinstance(data.get(key, {}), dict) for key in sections):
        return None
    return data


def load(root: Path | None = None) -> dict[str, Any]:
    """The whole catalog (``{"imported": {...}, "custom": {...}}``); empty when there is none (or when
    it was damaged: then it is kept aside, see the module docstring)."""
    path = _catalog_file(root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModelError(
            f"The list of imported and added models ({path}) could not be read ({exc.strerror}); "
            "it was left as it is."
        ) from None
    data = _parse(raw)
    if data is None:
        if not is_read_only(root):
            _keep_aside(path, raw)
        return {}
    return data


def _keep_aside(path: Path, raw: bytes) -> None:
    """Move the damaged catalog at ``path`` out of the way, unless it changed since it was read."""
    with _FILE_LOCK:
        try:
            if path.read_bytes() != raw:
                return  # rewritten meanwhile (by this process or another): not the damaged one
            target, number = path.with_name(DAMAGED), 1
            while target.exists():  # an earlier damaged copy is kept too
                number += 1
                target = path.with_name(f"{DAMAGED}-{number}")
            os.replace(path, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ModelError(
                f"The list of imported and added models ({path}) is damaged and could not be moved "
                f"aside ({exc.strerror}); it was left as it is."
            ) from None
    log.warning("The model catalog %s was damaged; kept as %s, the list starts empty", path, target)


def check(root: Path | None = None) -> str | None:
    """What a person should know about this models folder's catalog (a damaged one kept aside), or
    None: shown by the Models tab and ``pipedesk models``. Reading it first moves a damaged one aside."""
    load(root)
    folder = _catalog_file(root).parent
    kept = sorted(folder.glob(f"{DAMAGED}*"), key=lambda p: p.stat().st_mtime)
    if not kept:
        return None
    return (
        f"The list of imported and added models was damaged and could not be read, so it was kept "
        f"as {kept[-1]} and nothing was overwritten. Models imported before are still in "
        f"{folder / 'imported'}: import them again (or repair that file and put it back as "
        f"catalog.json). Delete {kept[-1].name} to stop this message."
    )


def save(data: dict[str, Any], root: Path | None = None) -> None:
    check_writable(root)
    with _FILE_LOCK:
        fs.write_text(_catalog_file(root), json.dumps(data, indent=2))


def imported(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Imported models by name."""
    return dict(load(root).get("imported", {}))


def custom(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Hub ids the user added, by id: ``{"task": ..., "revision": ...}``."""
    return dict(load(root).get("custom", {}))


def imported_path(name: str, root: Path | None = None) -> Path | None:
    """The folder of the model imported as ``name``, or None. Only reads (loading a model records
    its use: :func:`touch`)."""
    entry = load(root).get("imported", {}).get(name)
    if not entry:
        return None
    folder = Path(entry["path"])
    if not folder.is_absolute():
        folder = _root(root) / folder
    return folder


def usage(root: Path | None = None) -> dict[str, float]:
    """When each model (Hub id or imported name) was last used, as Unix times."""
    try:
        data = json.loads((_root(root) / "usage.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def touch(key: str, root: Path | None = None) -> None:
    """Remember that ``key`` was just used; written at most once a minute per model."""
    if is_read_only(root):
        return  # a shared read-only folder does not learn when this replica used a model
    seen = usage(root)
    now = time.time()
    if now - seen.get(key, 0) < 60:
        return
    seen[key] = now
    try:
        fs.write_text(_root(root) / "usage.json", json.dumps(seen, indent=1))
    except OSError:
        pass  # a read-only models folder still works; it just forgets when models were used


def remember_last(task: str, name: str, kind: str, root: Path | None = None) -> None:
    """Remember the owner's last request (the task, the model as named, None for the default: "",
    and the inputs' kind): the engine loads that model while the app starts (:func:`last_request`)."""
    if is_read_only(root):
        return
    try:
        fs.write_text(_root(root) / "last.json", json.dumps({"task": task, "model": name, "kind": kind}))
    except OSError:
        pass  # the app starts as before; only that model is not ready in advance


def last_request(root: Path | None = None) -> tuple[str, str, str] | None:
    """(task, model as named, kind) of the owner's last request (:func:`remember_last`), or None."""
    try:
        data = json.loads((_root(root) / "last.json").read_text(encoding="utf-8"))
        found = (data["task"], data["model"], data["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if all(isinstance(part, str) for part in found) else None


def add_custom(repo: str, task: str, revision: str = "main", root: Path | None = None) -> None:
    """Remember a Hub id the user added for ``task`` (shown in the Models tab and ``models list``)."""
    data = load(root)
    data.setdefault("custom", {})[repo] = {"task": task, "revision": revision, "added": time.time()}
    save(data, root)


def forget(name: str, root: Path | None = None) -> bool:
    """Drop ``name`` from the catalog (imported or custom); True if it was there."""
    data = load(root)
    found = any(data.get(section, {}).pop(name, None) is not None for section in ("imported", "custom"))
    if found:
        save(data, root)
    return found


def model_folder(source: Path) -> Path:
    """The model inside ``source``: the folder itself, or the newest snapshot of a copied Hub cache."""
    source = Path(source).expanduser()
    if not source.is_dir():
        raise ModelError(f"The folder {source} does not exist.")
    if (source / "config.json").is_file():
        return source
    snapshots = sorted(
        (p for p in source.glob("snapshots/*") if (p / "config.json").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if snapshots:
        return snapshots[-1]
    raise ModelError(
        f"The folder {source} is not a model: it has no config.json "
        "(copy the whole folder that save_pretrained wrote, or a Hub cache folder)."
    )


def check_name(name: str, root: Path | None = None, reserved: Collection[str] = ()) -> str:
    """A valid name, used by no imported model and not in ``reserved`` (the tasks' model ids and
    labels), or a ModelError saying why not."""
    name = name.strip()
    if not _NAME.match(name) or "/" in name:
        raise ModelError(
            f"{name!r} cannot be a model name: use letters, digits, spaces, dots or dashes "
            "(no slash, so it is never mistaken for a Hub id)."
        )
    if name in reserved or name in imported(root):
        raise ModelError(f"There is already a model called {name!r}: choose another name.")
    return name


def import_folder(
    source: Path,
    task: str,
    kinds: tuple[str, ...],
    name: str | None = None,
    root: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    reserved: Collection[str] = (),
) -> tuple[str, Path]:
    """Copy the model in ``source`` into the store as ``name`` for ``task`` after checking it fits one
    of the task's ``kinds`` (``desktop.engine.inventory.import_folder`` fills those in)."""
    check_writable(root)
    folder = model_folder(source)
    name = check_name(name or Path(source).name, root, reserved)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise ModelError(f"The folder {source} has a config.json but no weights (*.safetensors or *.bin).")
    check_fits_any(kinds, folder, name)
    total = sum(p.stat().st_size for p in files)
    base = _root(root)
    downloads.check_space(base, total, name)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
    target = base / "imported" / slug
    suffix = 1
    while target.exists():
        suffix += 1
        target = base / "imported" / f"{slug}-{suffix}"
    staging = base / "imported" / f".{target.name}.partial"
    downloads.remove_tree(staging)
    done, sizes, sha256 = 0, {}, {}
    try:
        for path in files:
            rel = path.relative_to(folder).as_posix()
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            sizes[rel] = dest.stat().st_size
            sha256[rel] = file_hashes(dest)[0]
            done += sizes[rel]
            if progress:
                progress(
                    done,
                    total,
                    f"Copying {name} · {downloads.human_size(done)} of {downloads.human_size(total)}",
                )
        os.replace(staging, target)
    except BaseException:
        downloads.remove_tree(staging)
        raise
    data = load(root)
    data.setdefault("imported", {})[name] = {
        "path": target.relative_to(base).as_posix(),
        "task": task,
        "source": str(Path(source).expanduser().resolve()),
        "added": time.time(),
        "files": sizes,
        "sha256": sha256,
    }
    save(data, root)
    return name, target


def verify_imported(name: str, root: Path | None = None) -> list[Problem]:
    """Check an imported model's files against the sizes and sha256 recorded when it was imported."""
    entry = imported(root).get(name)
    folder = imported_path(name, root)
    if not entry or folder is None:
        raise ModelError(f"No model was imported as {name!r}.")
    return [
        Problem(rel, issue)
        for rel, size in entry.get("files", {}).items()
        if (issue := check_file(folder / rel, size, entry.get("sha256", {}).get(rel)))
    ]


def remove_imported(name: str, root: Path | None = None) -> int:
    """Delete an imported model's copy and its entry; returns the bytes freed."""
    check_writable(root)
    entry = imported(root).get(name)
    folder = imported_path(name, root)
    if not entry or folder is None:
        raise ModelError(f"No model was imported as {name!r}.")
    freed = sum(entry.get("files", {}).values())
    forget(name, root)
    converted.remove_copies(_root(root), folder)
    if folder.is_relative_to(_root(root)):  # never delete a folder the user pointed at elsewhere
        downloads.remove_tree(folder)
    return freed
