"""ModelStore: the one owner of Pipedesk's model cache.

Models are downloaded with huggingface_hub into ``<models dir>/hub`` (an
explicit ``cache_dir``: the global ~/.cache/huggingface is never used). A
download counts as installed only once its manifest (file names, sizes,
sha256 where the Hub lists one) is written to ``<models dir>/manifests``, so
a half-finished download is never used. A model with a manifest is served
without any network call.

Runs on whatever thread asks for a model (Gradio workers, the CLI's main
thread, the batch worker); downloads of the same model are serialised by a
per-model lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop import paths
from desktop.errors import ModelError
from desktop.tasks.spec import ModelRef

#: Only what the runtime needs: configs, tokenizers, safetensors weights.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
FALLBACK_WEIGHT_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
SUPPORT_PATTERNS = (
    "*.json",
    "*.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
    "vocab*",
    "merges*",
    "tokenizer*",
    "sentencepiece*",
    "source.spm",
    "target.spm",
)
_SKIP_PATTERNS = ("*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.mlmodel", "*.gguf", "*.ckpt")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")

ProgressCallback = Callable[[int, int, str], None]
"""``progress(done_bytes, total_bytes, description)``."""


def looks_like_hub_id(name: str) -> bool:
    """True for strings shaped like ``owner/name`` or ``name`` on the Hub."""
    return bool(_HUB_ID.match(name)) and ".." not in name


def offline_mode() -> bool:
    """True when the user (setting or ``HF_HUB_OFFLINE``) asked for no network at all."""
    from desktop import settings

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return settings.load().offline


def hub_endpoint() -> str:
    """The Hub to download from, read on every call so ``HF_ENDPOINT`` changes are honoured."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _safe_name(ref: ModelRef) -> str:
    return f"{ref.repo.replace('/', '--')}@{ref.revision}"


@dataclass(frozen=True)
class Manifest:
    """What a finished download holds; written last, read to decide 'ready'."""

    repo: str
    revision: str
    commit: str
    snapshot: str
    files: dict[str, int]
    sha256: dict[str, str]
    downloaded_at: float

    @property
    def size(self) -> int:
        return sum(self.files.values())


class ModelStore:
    """Finds, downloads and describes models in one folder."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def root(self) -> Path:
        if self._root is not None:
            return self._root
        from desktop import settings

        return settings.load().models_dir or paths.default_models_dir()

    @property
    def hub_cache(self) -> Path:
        return self.root / "hub"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def _lock(self, ref: ModelRef) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(_safe_name(ref), threading.Lock())

    def manifest(self, ref: ModelRef) -> Manifest | None:
        """The manifest of a finished download of ``ref``, or None."""
        path = self.manifests / f"{_safe_name(ref)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Manifest(**data)
        except (OSError, ValueError, TypeError):
            return None

    def local_path(self, ref: ModelRef) -> Path | None:
        """The folder of an installed model, with no network call; None if not installed."""
        from desktop import bundled

        inside = bundled.bundled_path(ref)
        if inside is not None:
            return inside
        manifest = self.manifest(ref)
        if manifest is None:
            return None
        folder = Path(manifest.snapshot)
        if not folder.is_absolute():
            folder = self.root / folder
        return folder if (folder / "config.json").is_file() else None

    def ensure(self, ref: ModelRef, progress: ProgressCallback | None = None) -> Path:
        """Return the folder of ``ref``, downloading it first if it is not installed."""
        folder = self.local_path(ref)
        if folder is not None:
            return folder
        with self._lock(ref):
            folder = self.local_path(ref)  # another thread may have finished it
            if folder is not None:
                return folder
            return self.download(ref, progress)

    def download(self, ref: ModelRef, progress: ProgressCallback | None = None) -> Path:
        """Download ``ref`` from the Hub into the store and write its manifest."""
        if offline_mode():
            raise ModelError(
                f"{ref.display} is not downloaded yet and this computer is offline: "
                "connect once, or import it from a folder."
            )
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        endpoint = hub_endpoint()
        token = os.environ.get("HF_TOKEN") or False
        api = HfApi(endpoint=endpoint, token=token)
        try:
            info = api.model_info(ref.repo, revision=ref.revision, files_metadata=True)
            siblings = {s.rfilename: s for s in (info.siblings or [])}
            allow = self._allow_patterns(list(siblings))
            if progress:
                progress(0, 0, f"Preparing {ref.display}")
            snapshot = snapshot_download(
                ref.repo,
                revision=ref.revision,
                cache_dir=self.hub_cache,
                allow_patterns=allow,
                ignore_patterns=list(_SKIP_PATTERNS),
                endpoint=endpoint,
                token=token,
                tqdm_class=_progress_tqdm(progress, ref) if progress else None,
            )
        except (RepositoryNotFoundError, GatedRepoError):
            raise ModelError(
                f"No model called {ref.repo!r} was found on the Hugging Face Hub "
                "(check the spelling, or give the path of a model folder)."
            ) from None
        except RevisionNotFoundError:
            raise ModelError(f"{ref.repo} has no revision {ref.revision!r}.") from None
        except (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError, OSError) as exc:
            raise ModelError(
                f"Could not download {ref.display}: the model server could not be reached "
                f"({type(exc).__name__}). Check the connection and try again."
            ) from None
        snapshot_path = Path(snapshot)
        if not (snapshot_path / "config.json").is_file():
            raise ModelError(f"{ref.repo} is not a transformers model (it has no config.json).")
        files = {
            str(p.relative_to(snapshot_path)): p.stat().st_size
            for p in sorted(snapshot_path.rglob("*"))
            if p.is_file()
        }
        sha256 = {
            name: s.lfs.sha256
            for name, s in siblings.items()
            if name in files and getattr(s, "lfs", None) is not None and s.lfs.sha256
        }
        self._write_manifest(
            ref,
            Manifest(
                repo=ref.repo,
                revision=ref.revision,
                commit=info.sha or snapshot_path.name,
                snapshot=str(snapshot_path.relative_to(self.root)),
                files=files,
                sha256=sha256,
                downloaded_at=time.time(),
            ),
        )
        return snapshot_path

    @staticmethod
    def _allow_patterns(filenames: list[str]) -> list[str]:
        has_safetensors = any(name.endswith(".safetensors") for name in filenames)
        weights = WEIGHT_PATTERNS if has_safetensors else FALLBACK_WEIGHT_PATTERNS
        return [*SUPPORT_PATTERNS, *weights]

    def _write_manifest(self, ref: ModelRef, manifest: Manifest) -> None:
        paths.ensure(self.manifests)
        target = self.manifests / f"{_safe_name(ref)}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest.__dict__, indent=2), encoding="utf-8")
        os.replace(tmp, target)


def _progress_tqdm(progress: ProgressCallback, ref: ModelRef) -> type:
    """A tqdm class that forwards huggingface_hub's byte counts to ``progress``."""
    from tqdm.auto import tqdm

    class ProgressTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._bytes = kwargs.get("unit") == "B"

        def update(self, n=1):
            super().update(n)
            if self._bytes and self.total:
                progress(int(self.n), int(self.total), f"Downloading {ref.display}")

    return ProgressTqdm
