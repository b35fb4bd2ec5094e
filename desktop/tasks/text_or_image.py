"""Tasks that take a text or an image (Classify, Labels): the Input type switch, each input through
its own kind of model, and an automatic model choice for each. Pure Python (no torch, no gradio)."""

from __future__ import annotations

from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.files.images import open_photo
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import LIMITS
from desktop.tasks.spec import TaskSpec
from desktop.tasks.text import check_text

AUTO = "auto"


def input_type(value: Any) -> str:
    """'text' or 'image' for the Input type a person chose ('Text', 'Image' or 'Photo'; nothing means
    text)."""
    kind = (value or "Text").strip().lower() if isinstance(value, str) else "text"
    kind = "image" if kind == "photo" else kind
    if kind not in ("text", "image"):
        raise UserError(f"Input type must be 'Text' or 'Image', not {value!r}.")
    return kind


class TextOrImage(TaskSpec):
    """A text through ``text_kind`` models, an image through ``image_kind`` ones; the model "auto"
    (``auto_label`` in the lists; subclasses set ``default_model = ModelRef(AUTO, "main",
    auto_label)``) means each kind's default. A file row is a text, or (a folder of photos) a photo's
    path."""

    inputs = ("input_type", "text", "image")
    text_kind = ""
    image_kind = ""
    text_model = ModelRef("")
    image_model = ModelRef("")
    auto_label = ""

    def kind_for(self, inputs: dict[str, Any]) -> str:
        return self.image_kind if input_type(inputs.get("input_type")) == "image" else self.text_kind

    def kinds(self) -> tuple[str, ...]:
        return (self.text_kind, self.image_kind)

    def default_for(self, kind: str) -> ModelRef:
        return self.image_model if kind == self.image_kind else self.text_model

    def is_automatic(self, model: str | None) -> bool:
        return (model or "").strip() in ("", AUTO, self.auto_label)

    folder_kind = "image"  # a folder of photos, one per row

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        if input_type(inputs.get("input_type")) == "text":
            return {"input_type": "Text", "text": check_text(inputs.get("text"), LIMITS)}
        return {"input_type": "Image", "image": open_photo(inputs.get("image")).image}

    def file_inputs(self, text: str | None, holds: str = "text") -> dict[str, Any]:
        if holds == "image":  # a folder of photos: each row is a photo's path
            return {"input_type": "Image", "text": None, "image": text}
        return {"input_type": "Text", "text": text, "image": None}

    def cli_inputs(self, value: str) -> dict[str, Any]:
        """``pipedesk run TASK TEXT`` (a photo goes with ``--image``)."""
        return self.file_inputs(value)
