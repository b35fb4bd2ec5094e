"""What the model store knows about a model without a network call: its status, the manifest of a
finished download, whether the app is offline, and where the Hub is."""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from desktop.models.ref import ModelRef


class ModelStatus(str, enum.Enum):
    """What :meth:`ModelStore.status` answers; the value is what people read."""

    READY = "ready"
    MISSING = "not downloaded"
    INCOMPLETE = "incomplete"
    DAMAGED = "damaged"
    DOWNLOADING = "downloading"

    def __str__(self) -> str:
        return self.value


READY, MISSING, INCOMPLETE, DAMAGED, DOWNLOADING = ModelStatus


ProgressCallback = Callable[..., None]
"""``progress(done, total, description, unit="bytes")``: a download's bytes, or ``unit="parts"`` for
the parts of a long input; ``total`` 0 means 'no bar, just the text'."""
Cancel = threading.Event | None
"""Set it (from any thread) to stop a download; what it wrote is removed."""


def offline_mode() -> bool:
    """True when the user (setting or ``HF_HUB_OFFLINE``) asked for no network at all."""
    from desktop import settings

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return settings.load().offline


def hub_endpoint() -> str:
    """The Hub to download from, read on every call so ``HF_ENDPOINT`` changes are honoured."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def safe_name(ref: ModelRef) -> str:
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
