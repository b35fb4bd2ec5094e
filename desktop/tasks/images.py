"""Images as people give them: a path, an upload (Gradio's FileData), or a PIL image, checked for
what it is and for its size before anything decodes it (shared by Classify and Objects). Pure
Python with Pillow, imported when a check runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.errors import UserError

MAX_IMAGE_BYTES = 30 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # about 7,300 x 5,500: decoding more risks running out of memory
#: The longest side accepted: a 1 x 39,000,000 px PNG of 75 KB passes the pixel count but takes
#: half a minute of CPU to resize. Panoramas up to 16,384 px wide still pass.
MAX_IMAGE_SIDE = 16_384
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
