"""ModelStore: the one owner of Pipedesk's model cache.

Models are downloaded with huggingface_hub into ``<models dir>/hub`` (an
explicit ``cache_dir``: the global ~/.cache/huggingface is never used). A
download counts as installed only once every file has been checked against the
Hub's listing (size, and sha256 or git hash) and its manifest (file names,
sizes, sha256) is written to ``<models dir>/manifests``, so a half-finished
download is never used. A model with a manifest is served without any network
call; the manifest is also what ``verify`` checks against when offline.

Runs on whatever thread asks for a model (Gradio workers, the CLI's main
thread, the batch worker); downloads of the same model are serialised by a
per-model lock, so two requests download it once. The bytes themselves arrive
on huggingface_hub's worker threads (see :mod:`desktop.models.transfers`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

from desktop import fs
from desktop.errors import ModelError
from desktop.fmt import human_size
from desktop.models import catalog, converted, hub
from desktop.models import transfers as downloads
from desktop.models.hub import Problem, RemoteFile, check_file
from desktop.models.ref import ModelRef
from desktop.models.state import (
    DAMAGED,
    DOWNLOADING,
    INCOMPLETE,
    MISSING,
    READY,
    Cancel,
    Manifest,
    ModelStatus,
    ProgressCallback,
    hub_endpoint,
    offline_mode,
    safe_name,
)
from desktop.models.transfers import DownloadCancelled, Transfer

#: Bytes per read while downloading (huggingface_hub reads 10 MiB at a time): small enough that the
#: progress bar moves every second on a slow line, and that a stopped download keeps what arrived.
DOWNLOAD_CHUNK_BYTES = 64 * 1024


class ModelStore:
    """Finds, downloads, checks and removes models in one folder."""

    def __init__(self, root: Path | None = None, read_only: bool = False) -> None:
        self._root = root
        #: A folder shared by replicas (``pipedesk serve --models-dir``): models are served from it,
        #: nothing is ever written to it (downloads, repairs, removals refused in words).
        self.read_only = read_only
        if read_only:
            catalog.open_read_only(self.root)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Downloads in progress, by model key: written by downloading threads, read by any (the
        # Models tab's status, Cancel, a folder move); every access holds ``_active_lock``.
        self._active: dict[str, Transfer] = {}
        self._active_lock = threading.Lock()

    # --- where things are ----------------------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is not None:
            return self._root
        from desktop import settings

        return settings.models_dir()

    @property
    def fixed_root(self) -> Path | None:
        """The folder this store was made with, or None when it follows the settings' models folder
        (an engine process opens its store the same way)."""
        return self._root

    def follow(self, root: Path) -> None:
        """After the models folder moved: a store made with an explicit folder uses ``root`` from now on."""
        if self._root is not None:
            self._root = root

    @property
    def hub_cache(self) -> Path:
        return self.root / "hub"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def storage(self, ref: ModelRef) -> Path:
        """huggingface_hub's folder for ``ref.repo`` (every revision)."""
        return self.hub_cache / f"models--{ref.repo.replace('/', '--')}"

    def converted_copy(self, source: Path, engine: str) -> Path:
        """Where the copy of the model in ``source`` converted for ``engine`` is kept (made by the
        engine on first use; see :mod:`desktop.models.converted`). A read-only folder's copies are
        used where they exist; others are made in this process's own cache."""
        copy = converted.copy_folder(self.root, source, engine)
        if self.read_only and not copy.is_dir():
            from desktop import paths

            return converted.copy_folder(paths.cache_dir(), source, engine)
        return copy

    def downloading(self, ref: ModelRef | None = None) -> bool:
        """True while ``ref`` (or any model, when None) is being downloaded."""
        with self._active_lock:
            return bool(self._active) if ref is None else safe_name(ref) in self._active

    def transfer(self, ref: ModelRef) -> Transfer | None:
        """The download of ``ref`` in progress (bytes so far, speed), if there is one."""
        with self._active_lock:
            return self._active.get(safe_name(ref))

    def _lock(self, ref: ModelRef) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(safe_name(ref), threading.Lock())

    # --- what is installed ---------------------------------------------------------------

    def manifest(self, ref: ModelRef) -> Manifest | None:
        """The manifest of a finished download of ``ref``, or None."""
        path = self.manifests / f"{safe_name(ref)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Manifest(**data)
        except (OSError, ValueError, TypeError):
            return None

    def installed(self) -> list[Manifest]:
        """Every finished download in this store."""
        found = []
        for path in sorted(self.manifests.glob("*.json")) if self.manifests.is_dir() else []:
            try:
                found.append(Manifest(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def snapshot_folder(self, manifest: Manifest) -> Path:
        folder = Path(manifest.snapshot)
        return folder if folder.is_absolute() else self.root / folder

    def local_path(self, ref: ModelRef) -> Path | None:
        """The folder of an installed model, with no network call; None if not installed."""
        from desktop.models import bundled

        inside = bundled.bundled_path(ref)
        if inside is not None:
            return inside
        manifest = self.manifest(ref)
        if manifest is None:
            return None
        folder = self.snapshot_folder(manifest)
        return folder if (folder / "config.json").is_file() else None

    def status(self, ref: ModelRef) -> ModelStatus:
        """ready / not downloaded / incomplete / damaged / downloading, from the disk alone (quick)."""
        from desktop.models import bundled

        if bundled.bundled_path(ref) is not None:
            return READY
        if self.downloading(ref):
            return DOWNLOADING
        manifest = self.manifest(ref)
        if manifest is not None:
            folder = self.snapshot_folder(manifest)
            for name, size in manifest.files.items():
                path = folder / name
                if not path.is_file() or path.stat().st_size != size:
                    return DAMAGED
            return READY
        storage = self.storage(ref)
        started = (storage / "refs" / ref.revision).is_file() or (
            storage / "snapshots" / ref.revision
        ).is_dir()
        return INCOMPLETE if started else MISSING

    def size_on_disk(self, ref: ModelRef) -> int:
        """Bytes the model uses now (a partial download counts what is there)."""
        manifest = self.manifest(ref)
        if manifest is not None:
            return manifest.size
        blobs = self.storage(ref) / "blobs"
        return sum(p.stat().st_size for p in blobs.iterdir() if p.is_file()) if blobs.is_dir() else 0

    # --- getting models --------------------------------------------------------------------

    def ensure(self, ref: ModelRef, progress: ProgressCallback | None = None, cancel: Cancel = None) -> Path:
        """Return the folder of ``ref``, downloading it first if it is not installed."""
        folder = self.local_path(ref)
        if folder is None:
            with self._lock(ref):
                folder = self.local_path(ref)  # another thread may have finished it
                if folder is None:
                    folder = self._download_locked(ref, progress, cancel)
        catalog.touch(ref.repo, self.root)  # not in a read-only folder
        return folder

    def download(
        self, ref: ModelRef, progress: ProgressCallback | None = None, cancel: Cancel = None
    ) -> Path:
        """Download ``ref`` from the Hub (what is missing of it) and write its manifest."""
        with self._lock(ref):
            return self._download_locked(ref, progress, cancel)

    def cancel(self, ref: ModelRef | None = None) -> bool:
        """Cancel the download of ``ref`` (or every download); True if one was running."""
        with self._active_lock:
            hits = [t for key, t in self._active.items() if ref is None or key == safe_name(ref)]
        for transfer in hits:
            transfer.cancel.set()
        return bool(hits)

    def _download_locked(self, ref: ModelRef, progress: ProgressCallback | None, cancel: Cancel) -> Path:
        if self.read_only:
            raise ModelError(
                f"{ref.display} is not installed in the shared models folder {self.root}, which this "
                "server only reads: install it there from a computer that may write to it."
            )
        if offline_mode():
            raise ModelError(downloads.offline_message(ref.display))
        commit, files = hub.listing(ref, hub_endpoint())
        if "config.json" not in files:
            raise ModelError(f"{ref.repo} is not a transformers model (it has no config.json).")
        for attempt in (1, 2):
            snapshot = self._fetch(ref, commit, files, progress, cancel)
            if progress:
                progress(0, 0, f"Checking the files of {ref.display}")
            problems, sha256 = hub.check_files(snapshot, files)
            if not problems:
                break
            self._forget_files(ref, snapshot, files, [p.file for p in problems])
            if attempt == 2:
                raise ModelError(
                    f"The download of {ref.display} arrived damaged twice ({problems[0]}). "
                    "Nothing was kept; try again later."
                )
        manifest = Manifest(
            repo=ref.repo,
            revision=ref.revision,
            commit=commit,
            snapshot=snapshot.relative_to(self.root).as_posix(),
            files={name: f.size for name, f in files.items()},
            sha256=sha256,
            downloaded_at=time.time(),
        )
        fs.write_text(self.manifests / f"{safe_name(ref)}.json", json.dumps(asdict(manifest), indent=2))
        return snapshot

    def _have_blob(self, ref: ModelRef, remote: RemoteFile) -> bool:
        if not remote.blob_name:
            return False
        blob = self.storage(ref) / "blobs" / remote.blob_name
        return blob.is_file() and blob.stat().st_size == remote.size

    def _fetch(
        self,
        ref: ModelRef,
        commit: str,
        files: dict[str, RemoteFile],
        progress: ProgressCallback | None,
        cancel: Cancel,
    ) -> Path:
        """snapshot_download what is missing, with progress, space check, cancel and clean-up."""
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
        from huggingface_hub.utils import httpx

        constants.DOWNLOAD_CHUNK_SIZE = DOWNLOAD_CHUNK_BYTES

        storage = self.storage(ref)
        downloads.remove_stale_parts(storage, self.hub_cache / ".locks" / storage.name)
        needed = [f for f in files.values() if not self._have_blob(ref, f)]
        total = sum(f.size for f in needed)
        downloads.check_space(self.root, total, ref.display)
        description = f"Downloading {ref.display}"
        if progress and needed:
            progress(0, total, f"{description}: {len(needed)} files, {human_size(total)}")
        # Written first, as snapshot_download(revision=name) would: a stopped download shows as incomplete.
        fs.write_text(self.storage(ref) / "refs" / ref.revision, commit)
        transfer = Transfer(total, description, cancel)
        key = safe_name(ref)
        with self._active_lock:
            self._active[key] = transfer
        endpoint = hub_endpoint()
        token = os.environ.get("HF_TOKEN") or False

        def work() -> str:
            return snapshot_download(
                ref.repo,
                revision=commit,
                cache_dir=self.hub_cache,
                allow_patterns=list(files),
                endpoint=endpoint,
                token=token,
                tqdm_class=transfer.tqdm_class(),
                max_workers=4,
            )

        try:
            snapshot = Path(downloads.run_reporting(work, transfer, progress))
        except (DownloadCancelled, KeyboardInterrupt):
            self._discard_partial(ref)
            raise DownloadCancelled(
                f"The download of {ref.display} was cancelled; nothing was kept."
            ) from None
        except (LocalEntryNotFoundError, HfHubHTTPError, httpx.HTTPError, OSError) as exc:
            raise ModelError(
                f"Could not download {ref.display}: the connection to the model server failed "
                f"({type(exc).__name__}). What arrived is kept; try again to finish the download."
            ) from None
        finally:
            with self._active_lock:
                self._active.pop(key, None)
        return snapshot

    def _forget_files(
        self, ref: ModelRef, snapshot: Path, files: dict[str, RemoteFile], names: list[str]
    ) -> None:
        """Delete these files (the snapshot's link and the blob behind it) so they are fetched again."""
        for name in names:
            link = snapshot / name
            if link.is_symlink():
                downloads.remove_tree(link.resolve())
            downloads.remove_tree(link)
            blob_name = files[name].blob_name if name in files else None
            if blob_name:
                downloads.remove_tree(self.storage(ref) / "blobs" / blob_name)

    def _discard_partial(self, ref: ModelRef) -> None:
        """After a cancel: remove what this download wrote, keeping any installed revision intact."""
        storage = self.storage(ref)
        others = [m for m in self.installed() if m.repo == ref.repo]
        if not others:
            # A download thread still finishing its last chunk may write after the first pass.
            deadline = time.monotonic() + 5
            while True:
                downloads.remove_tree(storage)
                if not storage.exists() or time.monotonic() > deadline:
                    return
                time.sleep(0.1)
        for partial in (storage / "blobs").glob("*.incomplete"):
            partial.unlink(missing_ok=True)

    # --- checking and removing -----------------------------------------------------------

    def verify(self, ref: ModelRef, online: bool | None = None) -> list[Problem]:
        """Check every file of an installed model: against the Hub's listing when online, else the manifest."""
        manifest = self.manifest(ref)
        if manifest is None:
            raise ModelError(f"{ref.display} is not downloaded, so there is nothing to verify.")
        folder = self.snapshot_folder(manifest)
        if online is None:
            online = not offline_mode()
        if online:
            try:
                _commit, files = hub.listing(ModelRef(ref.repo, manifest.commit, ref.label), hub_endpoint())
            except ModelError:
                files = None  # the Hub is out of reach: the manifest still knows
            if files is not None:
                return [
                    Problem(n, issue)
                    for n, f in files.items()
                    if (issue := check_file(folder / n, f.size, f.sha256, f.blob_id))
                ]
        return [
            Problem(name, issue)
            for name, size in manifest.files.items()
            if (issue := check_file(folder / name, size, manifest.sha256.get(name)))
        ]

    def repair(
        self, ref: ModelRef, progress: ProgressCallback | None = None, cancel: Cancel = None
    ) -> list[Problem]:
        """Fetch again the files of ``ref`` that are missing or damaged; returns what was repaired."""
        catalog.check_writable(self.root)
        if offline_mode():
            raise ModelError(f"Repairing {ref.display} needs the network, and this computer is offline.")
        with self._lock(ref):
            manifest = self.manifest(ref)
            if manifest is None:
                self._download_locked(ref, progress, cancel)
                return []
            problems = self.verify(ref, online=True)
            if problems:
                commit, files = hub.listing(ModelRef(ref.repo, manifest.commit, ref.label), hub_endpoint())
                self._forget_files(ref, self.snapshot_folder(manifest), files, [p.file for p in problems])
                self._download_locked(ref, progress, cancel)
            return problems

    def remove(self, ref: ModelRef) -> int:
        """Delete an installed (or partly downloaded) model; returns the bytes freed."""
        from desktop.models import bundled

        if bundled.bundled_path(ref) is not None:
            raise ModelError(f"{ref.display} is part of this app and cannot be removed.")
        catalog.check_writable(self.root)
        with self._lock(ref):
            freed = self.size_on_disk(ref)
            manifest = self.manifest(ref)
            if manifest is not None:
                converted.remove_copies(self.root, self.snapshot_folder(manifest))
            (self.manifests / f"{safe_name(ref)}.json").unlink(missing_ok=True)
            if not [m for m in self.installed() if m.repo == ref.repo]:
                downloads.remove_tree(self.storage(ref))
            elif manifest is not None:
                downloads.remove_tree(self.snapshot_folder(manifest))
                downloads.remove_tree(self.storage(ref) / "refs" / ref.revision)
            return freed
