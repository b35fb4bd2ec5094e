"""Gradio components with Pipedesk's own input checks.

``SafeImage`` checks an upload before Gradio decodes it, so a file that is not
an image, or one too large to decode safely, gets a clear message instead of a
processing error (Gradio decodes images while preprocessing, before our code).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from desktop.errors import UserError

from gradio.events import Dependency

class SafeImage(gr.Image):
    """gr.Image that refuses non-images and decompression bombs with a readable message."""

    def preprocess(self, payload: Any) -> Any:
        from desktop.tasks.classify import load_image

        if payload is not None and getattr(payload, "path", None):
            try:
                load_image(payload.path, decode=False)
            except UserError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
        return super().preprocess(payload)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component