"""The transformers module, its classes resolved under one lock (any layer, any thread).

transformers resolves its classes lazily on first attribute access, and that is not thread-safe:
the background warm-up and a first request racing each other saw half-built attributes. Every
``transformers`` name Pipedesk uses is resolved through :func:`transformers_api`, never by a bare
``from transformers import X`` at call time.
"""

from __future__ import annotations

import threading
from typing import Any

_IMPORT_LOCK = threading.Lock()


def transformers_api(*names: str) -> Any:
    """The transformers module with ``names`` resolved under the lock; use only the attributes
    asked for (another may still be half-built by another thread). Any thread."""
    with _IMPORT_LOCK:
        import transformers
        from transformers.utils import logging as hf_logging

        for name in names:
            getattr(transformers, name)
        hf_logging.disable_progress_bar()  # the app shows its own progress, not "Loading weights" bars
        return transformers
