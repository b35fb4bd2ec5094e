"""Text or image classification (the tutorial's two-input tab): top-5 labels with scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.files.images import IMAGE_EXTENSIONS
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import SST2, classifier_limits, classify_forward, label_result, text_pieces
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop
from desktop.tasks.text_or_image import AUTO, TextOrImage

TOP_K = 5
AUTO_LABEL = "Automatic (SST-2 for text, ViT for images)"
TEXT_MODEL = SST2
TEXT_KIND, IMAGE_KIND = "text-classification", "image-classification"
IMAGE_MODEL = ModelRef("google/vit-base-patch16-224", "3f49326", "ViT base (ImageNet-1k)", 346)


class Classify(TextOrImage):
    """Text through a text classifier (SST-2 by default), images through an image classifier (ViT)."""

    id = "classify"
    title = "Classify"
    description = "Text goes through the SST-2 sentiment model, images through ViT (1,000 ImageNet classes)."
    kind = text_kind = TEXT_KIND
    image_kind = IMAGE_KIND
    text_model, image_model, auto_label = TEXT_MODEL, IMAGE_MODEL, AUTO_LABEL
    default_model = ModelRef(AUTO, "main", AUTO_LABEL)
    alternatives = (TEXT_MODEL, IMAGE_MODEL)
    examples = (["Text", "What a wonderful, sunny day!", None],)
    columns = ("label", "score")
    chart_title = "label"

    def cli_inputs(self, value: str) -> dict[str, Any]:
        """``pipedesk run classify X``: an existing image file is classified as an image, else as text."""
        path = Path(value).expanduser()
        if path.suffix.lower() in IMAGE_EXTENSIONS or path.is_file():
            return {"input_type": "Image", "text": None, "image": str(path)}
        return {"input_type": "Text", "text": value, "image": None}

    # --- the steps -------------------------------------------------------------------------

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


SPEC = Classify()
