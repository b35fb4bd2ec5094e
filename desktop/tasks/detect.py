"""Objects: find things in a photo, boxes drawn with their labels and scores (DETR-family models).

The photo goes through the same checks as Classify's before anything decodes it and is reduced
to a working size (:func:`desktop.files.images.open_photo`): the model looks at the reduced copy,
the boxes are drawn on it, and the detections above the threshold are reported in the original
photo's own pixels.
"""

from __future__ import annotations

from typing import Any

from desktop.files import OWNER, Limits
from desktop.files.images import IMAGE_EXTENSIONS, Photo, open_photo
from desktop.models.ref import ModelRef
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, slider

OPTIONS = (
    Option(
        "threshold",
        0.5,
        "Only objects found with at least this confidence.",
        float,
        slider("Threshold", 0.05, "Lower finds more, with more mistakes"),
        0.0,
        1.0,
    ),
)
COLUMNS = ["object", "score", "xmin", "ymin", "xmax", "ymax"]
CORNERS = ("xmin", "ymin", "xmax", "ymax")


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
    file_input = "image"  # a folder of photos (or a list of them), one photo per row
    folder_kind = "image"
    columns = ("count", "objects")
    chart_title = "object"

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"image": value}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"image": open_photo(inputs.get("image"))}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        photo: Photo = inputs["image"]
        return Prepared([Piece(0, 0, image=photo.image)], context={"photo": photo})

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        found = model.pipeline([p.image for p in pieces], threshold=options["threshold"])
        return [list(row) for row in found]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        photo: Photo = prepared.context["photo"]
        found = sorted(outputs[0], key=lambda d: -float(d["score"]))
        objects = [
            {
                "label": d["label"],
                "score": round(float(d["score"]), 4),
                "box": {k: _pixel(d["box"][k], photo.scale, photo.width, photo.height, k) for k in CORNERS},
            }
            for d in found
        ]
        # Drawn on the reduced copy the page shows, in its own pixels.
        shown = photo.image
        boxes = [
            (
                tuple(_pixel(d["box"][k], 1.0, shown.width, shown.height, k) for k in CORNERS),
                f"{o['label']} {o['score']:.0%}",
            )
            for d, o in zip(found, objects, strict=True)
        ]
        table = {
            "headers": COLUMNS,
            "data": [[o["label"], o["score"], *(o["box"][k] for k in CORNERS)] for o in objects],
        }
        nothing = (
            f"Nothing found above {options['threshold']:.0%}: lower the threshold to see weaker guesses."
        )
        summary = ", ".join(f"{o['label']} ({o['score']:.0%})" for o in objects) or nothing
        notes = [] if objects else [nothing]  # the tab shows notes beside the (empty) picture
        return Result(data={"objects": objects}, outputs=((shown, boxes), table), text=summary, notes=notes)

    def row_values(self, result: Result) -> dict[str, Any]:
        """A photo of a file run: how many objects, and each (label, score, box) as the API gives them."""
        return {"count": len(result.data["objects"]), "objects": result.data["objects"]}

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        return [str(o.get("label")) for o in values.get("objects") or () if isinstance(o, dict)]

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        # A photo is one piece; YOLOS reads up to 1,333 px: a few at a time on a CPU.
        return (4096, 4) if device == "cpu" else (65536, 32)


def _pixel(value: Any, scale: float, width: int, height: int, corner: str) -> int:
    """A box coordinate of the reduced copy as a whole pixel of an image ``width`` x ``height`` that
    is ``scale`` times as large, inside that image."""
    limit = width if corner[0] == "x" else height
    return min(limit, max(0, int(round(float(value) * scale))))


def is_image_file(name: str) -> bool:
    return any(name.lower().endswith(ext) for ext in IMAGE_EXTENSIONS)


SPEC = Detect()
