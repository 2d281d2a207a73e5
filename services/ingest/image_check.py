"""Read one file and decide from its content whether it is an image banana accepts."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from core.images.decode import open_rgb
from services.ingest.rejection import Rejection

# Only these decoders ever see untrusted bytes; Pillow's other plugins are never tried.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


@dataclass(frozen=True)
class ImageFacts:
    """What ingest records about a valid image."""

    sha256: str
    format: str
    width: int
    height: int


def check_image_file(
    path: str | os.PathLike[str], *, size_bytes: int, max_bytes: int, max_pixels: int
) -> ImageFacts | Rejection:
    """Read, hash and fully decode one file.

    Parameters
    ----------
    path : str or path-like
        File to read; a symbolic link here is refused (``O_NOFOLLOW``), since
        the scan has already resolved links.
    size_bytes : int
        Size from the scan, checked before anything is read.
    max_bytes, max_pixels : int
        Limits from the settings.

    Returns
    -------
    ImageFacts or Rejection
    """
    if size_bytes == 0:
        return Rejection("file is empty (0 bytes)", "copy the file again from its source")
    if size_bytes > max_bytes:
        return _too_large(size_bytes, max_bytes)
    try:
        # O_NONBLOCK: a file swapped for a FIFO since the scan must not hang the ingest.
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return Rejection("not a regular file", "remove it; only image files can be ingested")
            data = handle.read(max_bytes + 1)
    except OSError as error:
        return Rejection(
            f"cannot read file ({error.strerror})", "make the file readable by this user and check the disk"
        )
    if len(data) > max_bytes:  # grew since the scan
        return _too_large(len(data), max_bytes)
    if not data:
        return Rejection("file is empty (0 bytes)", "copy the file again from its source")
    facts = inspect_image_bytes(data, max_pixels=max_pixels)
    if isinstance(facts, Rejection):
        return facts
    image_format, width, height = facts
    return ImageFacts(sha256=hashlib.sha256(data).hexdigest(), format=image_format, width=width, height=height)


def inspect_image_bytes(data: bytes, *, max_pixels: int) -> tuple[str, int, int] | Rejection:
    """Identify, verify and decode image bytes; return ``(format, width, height)``.

    GIF and TIFF are checked on their first frame, the one banana shows, decoded as
    :func:`core.images.decode.open_rgb` decodes it for display and embedding; width and height are
    the shown picture's, after the EXIF orientation.
    Pillow's decompression-bomb warning is treated as an error.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                image_format, (width, height) = image.format, image.size
                if image_format is None:  # Pillow names the format of every file it opens
                    raise UnidentifiedImageError("Pillow opened the image but named no format")
                if width * height > max_pixels:
                    return Rejection(
                        f"image has too many pixels ({width}x{height} = {width * height} pixels is over the limit of {max_pixels})",
                        "downscale the image, or raise BANANA_MAX_IMAGE_PIXELS",
                    )
                image.verify()
            # verify() leaves the image unusable; decoding needs a fresh open. The size recorded
            # is the picture's as shown and embedded: after its EXIF orientation.
            width, height = open_rgb(io.BytesIO(data), formats=ALLOWED_FORMATS).size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            return Rejection(
                f"image has too many pixels, a possible decompression bomb ({error})",
                "downscale the image; Pillow's pixel limit guards against decompression bombs and stays on",
            )
        except UnidentifiedImageError:
            return Rejection(
                f"content is not a {', '.join(ALLOWED_FORMATS)} image",
                "convert it to one of these formats, or move it out of the folder",
            )
        # Decoders fail on hostile bytes in many ways (OSError, SyntaxError, ValueError,
        # struct.error, ...); any of them means this one file is damaged, never the batch.
        except Exception as error:  # noqa: BLE001
            return Rejection(
                f"image data is damaged or truncated ({type(error).__name__}: {error})",
                "export or download the image again",
            )
    return image_format, width, height


def _too_large(size_bytes: int, max_bytes: int) -> Rejection:
    return Rejection(
        f"file is {size_bytes} bytes, over the limit of {max_bytes} bytes",
        "shrink the image, or raise BANANA_MAX_IMAGE_BYTES",
    )
