"""A backbone's image recipe: decode, resize, center-crop, normalise."""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import ExifTags, Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from core.images.decode import DRAFT_MARGIN, open_rgb

INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
# EXIF orientation -> the turn that shows a (C, H, W) tensor upright, as ImageOps.exif_transpose
# does; decode_jpeg applies orientations on the CPU only.
EXIF_TURNS = {
    2: lambda t: t.flip(-1),
    3: lambda t: t.flip(-2, -1),
    4: lambda t: t.flip(-2),
    5: lambda t: t.transpose(-2, -1),
    6: lambda t: t.rot90(-1, (-2, -1)),
    7: lambda t: t.rot90(-1, (-2, -1)).flip(-2),
    8: lambda t: t.rot90(1, (-2, -1)),
}


@dataclass(frozen=True)
class Recipe:
    """How an image file becomes a backbone input, as the backbone was trained or evaluated.

    Parameters
    ----------
    resize : int
        The shorter side is resized to this many pixels (aspect kept), or both sides when ``square``.
    crop : int
        Side of the center crop taken after resizing; the model sees (3, crop, crop).
    mean, std : tuple of 3 floats
        Per-channel normalisation, in [0, 1] pixel units.
    interpolation : {"bilinear", "bicubic"}
        Resampling filter (antialiased, as torchvision does on PIL images).
    square : bool
        Resize to ``resize`` x ``resize`` ignoring the aspect ratio (the bundled backbone's recipe).
    draft : bool
        Let a JPEG decode at 1/2, 1/4 or 1/8 scale while both its sides stay at least twice
        ``resize`` (:data:`core.images.decode.DRAFT_MARGIN`, see :func:`core.images.decode.open_rgb`): a photo
        many times the input's size decodes faster, its features barely changed. A no-op for
        JPEGs under four times ``resize``, such as 32x32 images for a 32-pixel input.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    square: bool = False
    draft: bool = True

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}")
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"need 0 < crop <= resize, got crop={self.crop}, resize={self.resize}")

    def as_dict(self):
        """JSON-able description, recorded beside every embedding set."""
        return asdict(self)


def load_image(path, recipe):
    """Decode an image file as :func:`core.images.decode.open_rgb` does and apply the recipe's resize and crop.

    Pillow's decompression-bomb limit stays on.

    Parameters
    ----------
    path : str, path-like or binary file object
    recipe : Recipe

    Returns
    -------
    Tensor of shape (3, recipe.crop, recipe.crop), uint8
    """
    image = open_rgb(path, min_side=DRAFT_MARGIN * recipe.resize if recipe.draft else None)
    image = F.resize(image, _resize_size(recipe), interpolation=INTERPOLATIONS[recipe.interpolation])
    return F.pil_to_tensor(F.center_crop(image, [recipe.crop]))


def _resize_size(recipe):
    return [recipe.resize, recipe.resize] if recipe.square else recipe.resize


@dataclass(frozen=True)
class JpegBytes:
    """A JPEG file left undecoded, for :func:`decode_on_device`.

    Attributes
    ----------
    data : Tensor of shape (n_bytes,), uint8, on the CPU
    orientation : int
        Its EXIF orientation, 1 (upright) to 8.
    """

    data: torch.Tensor
    orientation: int


def read_for_device(path, recipe):
    """A plain (RGB or grey) JPEG's bytes, to decode on the GPU; any other image decoded here.

    Only the header is parsed here, so Pillow's decompression-bomb guard still applies.

    Returns
    -------
    JpegBytes, or Tensor of shape (3, recipe.crop, recipe.crop), uint8, as :func:`load_image` gives
    """
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "JPEG" or image.mode not in ("RGB", "L"):
            return load_image(io.BytesIO(data), recipe)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return JpegBytes(torch.frombuffer(bytearray(data), dtype=torch.uint8), orientation)


def decode_on_device(images, recipe, device):
    """Decode a batch's JPEG bytes on ``device`` (nvjpeg on CUDA) and resize and crop them there.

    Untested on a GPU so far; on the CPU the same code runs with libjpeg. When the device
    fails on the batch (one damaged file fails all), its JPEGs are decoded by Pillow one by one.

    Parameters
    ----------
    images : list of (JpegBytes or Tensor of shape (3, recipe.crop, recipe.crop), uint8)
        As :func:`read_for_device` gives them.
    recipe : Recipe
    device : torch.device

    Returns
    -------
    batch : Tensor of shape (B, 3, recipe.crop, recipe.crop), uint8, on ``device``, or None
        The images that decoded, in order; None when none did.
    failed : dict of int to Exception
        Position in ``images`` of each that could not be decoded, and why.
    """
    jpegs = {p: image for p, image in enumerate(images) if isinstance(image, JpegBytes)}
    decoded, failed = {}, {}
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for torchcodec's
            warnings.simplefilter("ignore", DeprecationWarning)
            pixels = (
                decode_jpeg([jpeg.data for jpeg in jpegs.values()], mode=ImageReadMode.RGB, device=device)
                if jpegs
                else []
            )
        for p, image in zip(jpegs, pixels):
            upright = EXIF_TURNS.get(jpegs[p].orientation, lambda t: t)(image)
            resized = F.resize(
                upright.float(),
                _resize_size(recipe),
                interpolation=INTERPOLATIONS[recipe.interpolation],
                antialias=True,
            )
            decoded[p] = F.center_crop(resized, [recipe.crop]).round_().clamp_(0, 255).to(torch.uint8)
    except RuntimeError:
        decoded = {}
        for p, jpeg in jpegs.items():
            try:
                decoded[p] = load_image(io.BytesIO(jpeg.data.numpy().tobytes()), recipe)
            except Exception as error:  # any decoder failure is this one file's problem
                failed[p] = error
    kept = [decoded.get(p, image).to(device, non_blocking=True) for p, image in enumerate(images) if p not in failed]
    return (torch.stack(kept) if kept else None), failed


def normalise(images, recipe, *, dtype=torch.float32):
    """Scale uint8 images to [0, 1] and normalise them with the recipe's mean and std.

    Parameters
    ----------
    images : Tensor of shape (B, 3, S, S), uint8, on any device
    recipe : Recipe
    dtype : torch.dtype
        Dtype of the result; the arithmetic is done in float32.

    Returns
    -------
    Tensor of shape (B, 3, S, S), ``dtype``, on the images' device
    """
    mean = torch.tensor(recipe.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, device=images.device).view(1, 3, 1, 1)
    return ((images.float() / 255 - mean) / std).to(dtype)
