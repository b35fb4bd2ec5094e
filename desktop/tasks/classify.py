"""Text or image classification (the tutorial's two-input tab): top-5 labels with scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.files.images import IMAGE_EXTENSIONS, open_photo
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import (
    LIMITS,
    SST2,
    classifier_limits,
    classify_forward,
    label_result,
    text_pieces,
)
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop, TaskSpec
from desktop.tasks.text import check_text

TOP_K = 5
AUTO = "auto"
AUTO_LABEL = "Automatic (SST-2 for text, ViT for images)"
TEXT_MODEL = SST2
TEXT_KIND, IMAGE_KIND = "text-classification", "image-classification"
IMAGE_MODEL = ModelRef("google/vit-base-patch16-224", "3f49326", "ViT base (ImageNet-1k)", 346)


class Classify(TaskSpec):
    """Text through a text classifier (SST-2 by default), images through an image classifier (ViT)."""

    id = "classify"
    title = "Classify"
    description = "Text goes through the SST-2 sentiment model, images through ViT (1,000 ImageNet classes)."
    kind = "text-classification"
    default_model = ModelRef(AUTO, "main", AUTO_LABEL)
    alternatives = (TEXT_MODEL, IMAGE_MODEL)
    inputs = ("input_type", "text", "image")
    examples = (["Text", "What a wonderful, sunny day!", None],)
    columns = ("label", "score")
    folder_kind = "image"
    chart_title = "label"

    # --- which kind of model -------------------------------------------------------------

    def kind_for(self, inputs: dict[str, Any]) -> str:
        return IMAGE_KIND if input_type(inputs.get("input_type")) == "image" else TEXT_KIND

    def kinds(self) -> tuple[str, ...]:
        return (TEXT_KIND, IMAGE_KIND)

    def default_for(self, kind: str) -> ModelRef:
        return IMAGE_MODEL if kind == IMAGE_KIND else TEXT_MODEL

    def is_automatic(self, model: str | None) -> bool:
        return (model or "").strip() in ("", AUTO, AUTO_LABEL)

    def cli_inputs(self, value: str) -> dict[str, Any]:
        """``pipedesk run classify X``: an existing image file is classified as an image, else as text."""
        path = Path(value).expanduser()
        if path.suffix.lower() in IMAGE_EXTENSIONS or path.is_file():
            return {"input_type": "Image", "text": None, "image": str(path)}
        return {"input_type": "Text", "text": value, "image": None}

    # --- the steps -------------------------------------------------------------------------

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        kind = input_type(inputs.get("input_type"))
        if kind == "text":
            return {"input_type": "Text", "text": check_text(inputs.get("text"), LIMITS)}
        return {"input_type": "Image", "image": open_photo(inputs.get("image")).image}

    def file_inputs(self, text: str | None, holds: str = "text") -> dict[str, Any]:
        if holds == "image":  # a folder of photos: each row is a photo's path
            return {"input_type": "Image", "text": None, "image": text}
        return {"input_type": "Text", "text": text, "image": None}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        if inputs["input_type"] == "Text":
            return text_pieces(model, [inputs["text"]])[0]
        return Prepared([Piece(0, 0, image=inputs["image"])])

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Any]:
        if inputs and all(one["input_type"] == "Text" for one in inputs):
            return text_pieces(model, [one["text"] for one in inputs])
        return super().preprocess_many(model, inputs, options)

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        if model.kind == TEXT_KIND:
            return classify_forward(model, pieces)
        scores = model.pipeline([p.image for p in pieces], top_k=TOP_K)
        return [{s["label"]: round(float(s["score"]), 6) for s in row} for row in scores]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        top = dict(list(outputs[0].items())[:TOP_K])
        return label_result(top)

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        return [values["label"]] if values.get("label") else []

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return classifier_limits(device, model)


def input_type(value: Any) -> str:
    """'text' or 'image' for the Input type a person chose ('Text', 'Image' or 'Photo'; nothing means
    text)."""
    kind = (value or "Text").strip().lower() if isinstance(value, str) else "text"
    kind = "image" if kind == "photo" else kind
    if kind not in ("text", "image"):
        raise UserError(f"Input type must be 'Text' or 'Image', not {value!r}.")
    return kind


SPEC = Classify()
