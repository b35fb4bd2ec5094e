"""Objects: find things in a photo, boxes drawn with their labels and scores (DETR-family models).

The image goes through the same checks as Classify's before anything decodes it; the model's
detections above the threshold come back as boxes in the image's own pixels.
"""

from __future__ import annotations

from typing import Any

from desktop.models.ref import ModelRef
from desktop.tasks.images import IMAGE_EXTENSIONS, load_image
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, slider

OPTIONS = (
    Option(
        "threshold",
        0.5,
        "Only objects found with at least this confidence.",
        float,
        slider("Threshold", 0.05, 1.0, 0.5, 0.05, "Lower finds more, with more mistakes"),
        0.0,
        1.0,
    ),
)
COLUMNS = ["object", "score", "xmin", "ymin", "xmax", "ymax"]


class Detect(TaskSpec):
    id = "detect"
    title = "Objects"
    description = "Finds objects in a photo and draws a box around each, with its label and confidence."
    kind = "object-detection"
    default_model = ModelRef("hustvl/yolos-tiny", "main", "YOLOS tiny (COCO, 80 kinds of objects)", 26)
    alternatives = (ModelRef("hustvl/yolos-small", "main", "YOLOS small (COCO, more accurate)", 123),)
    inputs = ("image",)
    options = OPTIONS
    examples = ()
    file_input = None  # photos one at a time

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"image": value}

    def validate(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"image": load_image(inputs.get("image"))}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        return Prepared([Piece(0, 0, image=inputs["image"])], context={"image": inputs["image"]})

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        found = model.pipeline([p.image for p in pieces], threshold=options["threshold"])
        return [list(row) for row in found]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        objects = [
            {
                "label": d["label"],
                "score": round(float(d["score"]), 4),
                "box": {k: int(round(float(d["box"][k]))) for k in ("xmin", "ymin", "xmax", "ymax")},
            }
            for d in sorted(outputs[0], key=lambda d: -float(d["score"]))
        ]
        image = prepared.context["image"]
        boxes = [
            (
                (o["box"]["xmin"], o["box"]["ymin"], o["box"]["xmax"], o["box"]["ymax"]),
                f"{o['label']} {o['score']:.0%}",
            )
            for o in objects
        ]
        table = {
            "headers": COLUMNS,
            "data": [
                [o["label"], o["score"], *(o["box"][k] for k in ("xmin", "ymin", "xmax", "ymax"))]
                for o in objects
            ],
        }
        summary = (
            ", ".join(f"{o['label']} ({o['score']:.0%})" for o in objects)
            or "No objects found above the threshold."
        )
        return Result(data={"objects": objects}, outputs=((image, boxes), table), text=summary)


def is_image_file(name: str) -> bool:
    return any(name.lower().endswith(ext) for ext in IMAGE_EXTENSIONS)


SPEC = Detect()
