"""Decoding an image file as it was shot: first frame, EXIF orientation applied, 8-bit RGB.

Display, embedding, class-folder reading and ingest's recorded sizes all decode through
:func:`open_rgb`, so they agree on which way is up and how bright a pixel is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Callers that resize to S pixels let a JPEG draft-decode down to DRAFT_MARGIN * S, not S: on the
# photo set, the bundled (32-px) backbone's features then stay within cosine 0.99 of a full
# decode (mean 0.9985); drafting down to S itself let the worst photo fall to 0.975.
DRAFT_MARGIN = 2
# Pillow's modes for grey images of more than 8 bits per pixel: plain convert("RGB") clips
# them to 255 (a 16-bit gradient turns almost all white), so they are scaled here instead.
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT, _TIFF_SIGNED = 258, 339, 2


def open_rgb(source, *, min_side=None, formats=None):
    """Decode the first frame of an image, the right way up, as 8-bit RGB.

    Pillow's decompression-bomb guard applies as in ``Image.open``.

    Parameters
    ----------
    source : str, path-like or binary file object
    min_side : int, optional
        A JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
        ``draft``) as long as both sides stay at least ``min_side`` pixels; much faster
        for photos far larger than what the caller resizes them to. Other formats, and
        JPEGs smaller than twice ``min_side``, decode at full size.
    formats : tuple of str, optional
        Only these Pillow decoders may read the bytes (as ``Image.open``'s ``formats``).

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, loaded, of shape (height, width) after the EXIF orientation.
    """
    with Image.open(source, formats=formats) as image:
        if min_side is not None and image.format == "JPEG":
            image.draft("RGB", (min_side, min_side))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        if image.mode in HIGH_BIT_DEPTH_MODES:
            return _scaled_to_8_bit(image).convert("RGB")
        return image.convert("RGB")


def _scaled_to_8_bit(image):
    """A grey image of more than 8 bits as mode ``L``, its value range mapped onto 0..255."""
    values = np.asarray(image, dtype=np.float32)
    low, high = _value_range(image, values)
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) * (255 / (high - low))
    return Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8), mode="L")


def _value_range(image, values):
    """The values shown as black and white.

    Integers of up to 16 bits span their bit depth (the file's declared one where it has one:
    a 12-bit TIFF spans 0..4095; 16-bit unsigned 0..65535, i.e. 8-bit value = value >> 8 rounded).
    Floats within [0, 1] span [0, 1]. Wider integers and other floats have no range to go by,
    so they span their own minimum to maximum.
    """
    if image.mode != "F":
        bits, signed = _declared_bits(image, values)
        if bits <= 16:
            low = -(2 ** (bits - 1)) if signed else 0
            return low, low + 2**bits - 1
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if image.mode == "F" and 0 <= low and high <= 1:
        return 0.0, 1.0
    return low, high if high > low else low + 1


def _declared_bits(image, values):
    """(bits per sample, signed) of an integer image: the TIFF tags, else what its mode holds."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None and _TIFF_BITS_PER_SAMPLE in tags:
        signed = tags.get(_TIFF_SAMPLE_FORMAT, (1,))[0] == _TIFF_SIGNED
        return int(tags[_TIFF_BITS_PER_SAMPLE][0]), signed
    if image.mode.startswith("I;16"):
        return 16, False
    # Mode "I" from elsewhere: 16-bit data widened to 32 bits unless the values say otherwise.
    return (16 if values.size == 0 or (values.min() >= 0 and values.max() <= 65535) else 32), False
