"""Opening the engine: the owner's :class:`~desktop.engine.client.Door` to a new engine, in this
process or in a child process of its own; the one place that picks the implementation.

Runs on the caller's thread (start-up).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from desktop.engine.client import Door

if TYPE_CHECKING:
    from desktop.engine.runtime import Runtime
    from desktop.models.store import ModelStore

#: ``in-process`` keeps the engine in the app's own process (where a child process cannot start).
ENGINE_ENV = "PIPEDESK_ENGINE"


def open_door(
    device: str | None = None,
    own_process: bool = False,
    warm: bool = True,
    store: ModelStore | None = None,
    preload: bool = False,
) -> Door:
    """The owner's door to a new engine on ``device`` (None: the saved or automatic choice; a typo
    is refused in words at once). ``own_process``: the engine runs in a child process
    (:mod:`desktop.engine.process`; the window and ``pipedesk serve``), unless ``$PIPEDESK_ENGINE``
    is ``in-process``. ``store``: the models (None: the models folder of the settings; a read-only
    store for replicas sharing one folder stays read-only in the engine too). ``warm``: the engine process imports torch and transformers at once, beside
    the front's start (``serve``); else at ``warm_up_in_background()`` (the window calls it once its
    page is on screen: on a few cores both at once slowed the page by seconds). ``preload``: warming
    up the engine process also loads the model of the owner's last request, if it is on disk
    (``Runtime.preload_last``: the first answer need not wait for it)."""
    if own_process and os.environ.get(ENGINE_ENV, "").strip().lower() != "in-process":
        from desktop.engine.process import ProcessEngine

        engine = ProcessEngine(device, store=store, warm=warm, preload=preload)
        return Door(engine, engine.store)
    from desktop.engine.runtime import Runtime

    return local_door(Runtime(device=device, store=store))


def local_door(runtime: Runtime) -> Door:
    """The owner's door to the engine ``runtime`` (a :class:`~desktop.engine.runtime.Runtime`) in
    this process."""
    from desktop.engine.local import InProcessEngine

    return Door(InProcessEngine(runtime), runtime.store)
