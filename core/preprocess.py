"""A backbone's image recipe: decode, resize, center-crop, normalise."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from core.decode import open_rgb

INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


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
        Let a JPEG decode at 1/2, 1/4 or 1/8 scale while both its sides stay at least
        ``resize`` (see :func:`core.decode.open_rgb`): a photo many times the input's size
        decodes several times faster, its features barely changed. A no-op for JPEGs under
        twice ``resize``, such as 32x32 images for a 32-pixel input.
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
    """Decode an image file as :func:`core.decode.open_rgb` does and apply the recipe's resize and crop.

    Pillow's decompression-bomb limit stays on.

    Parameters
    ----------
    path : str, path-like or binary file object
    recipe : Recipe

    Returns
    -------
    Tensor of shape (3, recipe.crop, recipe.crop), uint8
    """
    image = open_rgb(path, min_side=recipe.resize if recipe.draft else None)
    size = [recipe.resize, recipe.resize] if recipe.square else recipe.resize
    image = F.resize(image, size, interpolation=INTERPOLATIONS[recipe.interpolation])
    return F.pil_to_tensor(F.center_crop(image, [recipe.crop]))


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
