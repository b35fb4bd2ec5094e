"""Who asks the engine: the person at this computer, or a visitor (LAN sharing, a public server).

Who asks is a field of every request (:class:`desktop.engine.client.Request`); it decides three
things, each defined here or where its rule lives: which model names are accepted
(:func:`policy`, :mod:`desktop.engine.resolve`), what a file handed in may cost (:func:`limits`,
:mod:`desktop.files`) and the place in the device's queue (:mod:`desktop.engine.scheduler`).
"""

from __future__ import annotations

import enum

from desktop.engine.resolve import Policy
from desktop.files import OWNER as OWNER_LIMITS
from desktop.files import VISITOR as VISITOR_LIMITS
from desktop.files import Limits


class Who(str, enum.Enum):
    """The owner, or a visitor (installed models only, the visitors' file limits, after the owner)."""

    OWNER = "owner"
    VISITOR = "visitor"


def policy(who: Who) -> Policy:
    """The name policy for ``who``: visitors may use installed models only."""
    return Policy.GUEST if who is Who.VISITOR else Policy.LOCAL


def limits(who: Who) -> Limits:
    """What a file handed in by ``who`` may cost: the owner's limits, or the visitors' smaller ones."""
    return VISITOR_LIMITS if who is Who.VISITOR else OWNER_LIMITS
