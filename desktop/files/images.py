"""Photos as people give them: a path, an upload (Gradio's FileData), or a PIL image, checked for
what it is and for its size before anything decodes it (shared by every task that takes a photo).

* Only Pillow's decoders of the formats the app lists (:data:`FORMATS`) may open a file: a
  PostScript or EPS file named ``photo.png`` is refused, never handed to Ghostscript.
* The pixels a file declares are checked from its header before decoding.
* A photo larger than the models need is decoded at a reduced size where the format allows
  (JPEG decodes at 1/2, 1/4 or 1/8 scale directly) and reduced to :data:`WORKING_SIDE`: a
  36-megapixel photo costs a few megabytes, not hundreds. :class:`Photo` keeps the original size,
  so what a model finds on the reduced copy can be reported in the original's pixels.

Pure Python with Pillow, imported when a file is opened; runs on the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.errors import UserError
from desktop.files import handed_in

MAX_IMAGE_BYTES = 30 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # about 7,300 x 5,500: decoding more risks running out of memory
#: The longest side accepted: a 1 x 39,000,000 px PNG of 75 KB passes the pixel count but takes
#: half a minute of CPU to resize. Panoramas up to 16,384 px wide still pass.
MAX_IMAGE_SIDE = 16_384
#: The longest side a photo is reduced to before a model sees it: more than every image model
#: here reads (ViT and CLIP 224-384 px, DETR/YOLOS at most 1,333 px).
WORKING_SIDE = 1_600
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
#: Pillow's decoders allowed to open a photo (JPEG's also opens MPO, what many cameras write).
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
READABLE = "PNG, JPEG, WebP, GIF, BMP, TIFF"


@dataclass(frozen=True)
class Photo:
    """A decoded photo, reduced to at most :data:`WORKING_SIDE`, and the size of the original."""

    image: Any  # PIL.Image.Image, RGB
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Original pixels per pixel of ``image`` (1.0 when it was not reduced)."""
        return self.width / self.image.width if self.image.width else 1.0


def open_photo(source: Any, max_side: int = WORKING_SIDE) -> Photo:
    """Open a photo safely: refuse what is not a photo of an allowed format, or too large to decode,
    before decoding; decode it reduced to at most ``max_side`` pixels a side.

    ``source`` is a path, an uploaded file as Gradio passes it, or a PIL image.
    """
    from PIL import Image

    image = check_image(source)
    width, height = image.size
    try:
        if max(width, height) > max_side:
            image.thumbnail((max_side, max_side))  # JPEG: decoded at a reduced scale (draft)
        else:
            image.load()
        return Photo(image.convert("RGB"), width, height)
    except (OSError, SyntaxError, ValueError, ZeroDivisionError, Image.DecompressionBombError):
        raise UserError("The image file is damaged or incomplete and could not be decoded.") from None


def not_an_image(name: str) -> UserError:
    """The refusal of a file named ``name`` that is no photo Pipedesk reads (the CLI's, the tab's
    and the API's sentence)."""
    return UserError(f"{name} is not an image Pipedesk can read ({READABLE}).")


def check_image(source: Any) -> Any:
    """The photo ``source`` opened (its header read) and checked, not decoded yet: a PIL image.
    UserError when it is missing, too large a file, not of an allowed format or too many pixels."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        image = source
    else:
        file = handed_in(source, "an image", MAX_IMAGE_BYTES)
        try:
            image = Image.open(file, formats=FORMATS)  # reads the header only
        except Image.DecompressionBombError:
            raise UserError(
                f"The image is too large to decode safely (the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} "
                "megapixels). Resize it first."
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise not_an_image(file.name) from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise UserError(
            f"The image is too large to decode safely: {width:,} x {height:,} pixels (the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels and {MAX_IMAGE_SIDE:,} pixels a side). Resize it first."
        )
    return image
