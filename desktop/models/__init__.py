"""Models: references, the store (downloads, checks, removal), the Hub, and what fits which task.

Importing the package imports only :mod:`desktop.models.ref`; the store's names are loaded on
first use, so the modules the store itself imports can import ``desktop.models.ref`` freely.
"""

from __future__ import annotations

from typing import Any

from desktop.models.ref import ModelRef, looks_like_hub_id

_STORE_NAMES = {
    "DAMAGED",
    "DOWNLOADING",
    "INCOMPLETE",
    "MISSING",
    "READY",
    "Manifest",
    "ModelStore",
    "ProgressCallback",
    "hub_endpoint",
    "offline_mode",
}


def __getattr__(name: str) -> Any:
    if name in _STORE_NAMES:
        from desktop.models import store

        return getattr(store, name)
    raise AttributeError(f"module 'desktop.models' has no attribute {name!r}")


__all__ = ["ModelRef", "looks_like_hub_id", *sorted(_STORE_NAMES)]
