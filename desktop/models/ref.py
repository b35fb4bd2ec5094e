"""``ModelRef``: a Hub model pinned to a revision, and what counts as a Hub id."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    """A Hub model pinned to a revision, with the name people see."""

    repo: str
    revision: str = "main"
    label: str = ""
    size_mb: int = 0  # about how much a download of it weighs (0: unknown), shown before downloading

    @property
    def display(self) -> str:
        return self.label or self.repo


def looks_like_hub_id(name: str) -> bool:
    """True for strings shaped like ``owner/name`` or ``name`` on the Hub."""
    return bool(_HUB_ID.match(name)) and ".." not in name
