"""Text or image classification (the tutorial's two-input tab): top-5 labels with scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.tasks.sentiment import classify_text, scores_to_label
from desktop.tasks.spec import ModelRef, Result, TaskSpec

MAX_IMAGE_BYTES = 30 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # about 7,300 x 5,500: decoding more risks running out of memory
#: The longest side accepted: a 1 x 39,000,000 px PNG of 75 KB passes the pixel count but takes
#: half a minute of CPU to resize. Panoramas up to 16,384 px wide still pass.
MAX_IMAGE_SIDE = 16_384
TOP_K = 5
AUTO = "auto"
AUTO_LABEL = "Automatic (SST-2 for text, ViT for images)"
TEXT_MODEL = ModelRef(
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "714eb0f",
    "DistilBERT (SST-2, English)",
    268,
)
IMAGE_MODEL = ModelRef("google/vit-base-patch16-224", "3f49326", "ViT base (ImageNet-1k)", 346)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def upload_path(value: Any) -> str | None:
    """The file path of an image input as Gradio hands it over unprocessed (a FileData model or a
    dict with ``path``), or a plain path string; None when nothing was given."""
    if value is None:
        return None
    value = value.get("path") if isinstance(value, dict) else getattr(value, "path", value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def load_image(source: Any, decode: bool = True):
    """Open an image safely: refuse non-images and images too large to decode, before decoding.

    ``source`` is a path, an uploaded file as Gradio passes it, or a PIL image. Only the header
    is read until every check has passed; with ``decode=False`` the image is not decoded at all.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        image = source
    else:
        path = upload_path(source)
        if path is None:
            raise UserError("Please choose an image: none was given.")
        file = Path(path)
        if not file.is_file():
            raise UserError(f"The image {file.name} could not be found.")
        if file.stat().st_size > MAX_IMAGE_BYTES:
            raise UserError(
                f"The image file is too large ({file.stat().st_size / 1e6:.0f} MB); "
                f"the limit is {MAX_IMAGE_BYTES // 1_000_000} MB."
            )
        try:
            image = Image.open(file)  # reads the header only
        except Image.DecompressionBombError:
            raise UserError(
                f"The image is too large to decode safely (the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} "
                "megapixels). Resize it first."
            ) from None
        except (UnidentifiedImageError, OSError):
            raise UserError(
                f"{file.name} is not an image Pipedesk can read (PNG, JPEG, WebP, GIF, BMP, TIFF)."
            ) from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise UserError(
            f"The image is too large to decode safely: {width:,} x {height:,} pixels (the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels and {MAX_IMAGE_SIDE:,} pixels a side). Resize it first."
        )
    if not decode:
        return image
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise UserError("The image file is damaged or incomplete and could not be decoded.") from None
    return image.convert("RGB")


def predict(
    runtime,
    input_type: str,
    text: str | None = None,
    image: Any = None,
    model: str | None = None,
    *,
    progress=None,
) -> Result:
    kind = (input_type or "Text").strip().lower()
    if (model or "").strip() in ("", AUTO, AUTO_LABEL):
        model = None
    if kind == "text":
        return classify_text(runtime, TEXT_SPEC, text, model, progress)
    if kind != "image":
        raise UserError(f"Input type must be 'Text' or 'Image', not {input_type!r}.")
    picture = load_image(image)
    loaded = runtime.load(IMAGE_SPEC, model, progress=progress)
    scores = runtime.infer(loaded, lambda pipe: pipe(picture, top_k=TOP_K))
    confidences = scores_to_label(scores)
    best, score = next(iter(confidences.items()))
    return Result(
        data={"label": best, "score": score, "scores": confidences},
        outputs=(confidences,),
        text=f"{best} ({score:.1%})",
        model=loaded.display,
    )


def cli_inputs(value: str) -> tuple[Any, ...]:
    """``pipedesk run classify X``: an existing image file is classified as an image, anything else as text."""
    path = Path(value).expanduser()
    if path.suffix.lower() in IMAGE_EXTENSIONS or path.is_file():
        return ("Image", None, str(path))
    return ("Text", value, None)


def _inputs():
    import gradio as gr

    return [
        gr.Radio(["Text", "Image"], value="Text", label="Input type", render=False),
        gr.Textbox(label="Text", lines=3, placeholder="A sentence to classify…", render=False),
        # image_mode=None: Gradio reads only the header and hands over the file; the checks above run
        # before anything decodes it (the UI sends it unprocessed: see ``raw_inputs``).
        gr.Image(
            label="Image",
            type="filepath",
            image_mode=None,
            sources=["upload", "clipboard"],
            visible=False,
            render=False,
        ),
    ]


def _outputs():
    import gradio as gr

    return [gr.Label(label="Top 5", num_top_classes=TOP_K, render=False)]


def _wire(inputs, model) -> None:
    """Show the text box or the image box, whichever the input type asks for."""
    import gradio as gr

    kind, text, image = inputs
    kind.change(
        lambda value: (gr.update(visible=value == "Text"), gr.update(visible=value == "Image")),
        inputs=kind,
        outputs=[text, image],
        api_visibility="private",
        queue=False,
    )


# The two halves, as specs of their own so model lookup and "does it fit" work per input type.
def _half(task_id: str, title: str, kind: str, model: ModelRef) -> TaskSpec:
    return TaskSpec(
        id=task_id,
        title=title,
        description="",
        kind=kind,
        default_model=model,
        alternatives=(),
        inputs=list,
        outputs=list,
        predict=predict,
    )


TEXT_SPEC = _half("classify-text", "Text classification", "text-classification", TEXT_MODEL)
IMAGE_SPEC = _half("classify-image", "Image classification", "image-classification", IMAGE_MODEL)

SPEC = TaskSpec(
    id="classify",
    title="Classify",
    description="Text goes through the SST-2 sentiment model, images through ViT (1,000 ImageNet classes).",
    kind="text-classification",
    default_model=ModelRef(AUTO, "main", AUTO_LABEL),
    alternatives=(TEXT_MODEL, IMAGE_MODEL),
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    examples=(["Text", "What a wonderful, sunny day!", None],),
    cli_inputs=cli_inputs,
    kinds_by_input={"Text": "text-classification", "Image": "image-classification"},
    wire=_wire,
)
