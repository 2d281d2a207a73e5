"""Batched image augmentations on tensors, for self-supervised training.

Everything runs on whole batches on the training device (no per-image PIL), so
augmentation keeps up with a GPU. Randomness comes only from the ``generator``
passed in, which makes a batch reproducible from a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ; a hue shift is a rotation of the (I, Q) plane.
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
# Inverted once here: torch.linalg.inv on a GPU waits for the device, twice per training step.
_YIQ_TO_RGB = tuple(map(tuple, torch.linalg.inv(torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)).tolist()))


@dataclass(frozen=True)
class AugmentConfig:
    """SimCLR-style view recipe (the CIFAR settings of solo-learn's SimCLR)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    grayscale_p: float = 0.2


def _uniform(n, low, high, generator, device):
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def random_resized_crop(images, *, size, config, generator):
    """Crop a random box of each image and resize it to ``size`` x ``size``.

    Parameters
    ----------
    images : Tensor of shape (B, C, H, W), float
    size : int
    config : AugmentConfig
    generator : torch.Generator on the images' device

    Returns
    -------
    Tensor of shape (B, C, size, size)
    """
    n, device = images.shape[0], images.device
    area = _uniform(n, *config.crop_scale, generator, device)
    log_ratio = _uniform(n, math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]), generator, device)
    ratio = torch.exp(log_ratio)
    # Box sides as fractions of the image side; clamp keeps the box inside the image.
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    center_x = (1 - width) * _uniform(n, -1.0, 1.0, generator, device)
    center_y = (1 - height) * _uniform(n, -1.0, 1.0, generator, device)
    flip = torch.where(torch.rand(n, generator=generator, device=device) < config.flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = center_y
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(images):
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def color_jitter(images, *, config, generator):
    """Brightness, contrast, saturation and hue jitter, each image its own factors.

    Images not drawn for jitter (probability ``1 - jitter_p``) keep neutral factors.
    Input and output are (B, 3, H, W) floats in [0, 1].
    """
    n, device = images.shape[0], images.device
    apply = (torch.rand(n, generator=generator, device=device) < config.jitter_p).to(images.dtype)

    def factor(strength):
        drawn = _uniform(n, max(0.0, 1 - strength), 1 + strength, generator, device)
        return (1 + apply * (drawn - 1)).view(n, 1, 1, 1)

    brightness, contrast, saturation = factor(config.brightness), factor(config.contrast), factor(config.saturation)
    hue_angle = apply * _uniform(n, -config.hue, config.hue, generator, device) * 2 * math.pi

    images = (images * brightness).clamp(0, 1)
    mean = _gray(images).mean(dim=(2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean).clamp(0, 1)
    gray = _gray(images)
    images = ((images - gray) * saturation + gray).clamp(0, 1)
    return rotate_hue(images, hue_angle).clamp(0, 1)


def rotate_hue(images, angle):
    """Shift hue by rotating chroma in YIQ space; ``angle`` in radians, shape (B,)."""
    to_yiq = torch.tensor(_RGB_TO_YIQ, device=images.device, dtype=images.dtype)
    to_rgb = torch.tensor(_YIQ_TO_RGB, device=images.device, dtype=images.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(images.shape[0], 3, 3, device=images.device, dtype=images.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    transform = to_rgb @ rotation @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", transform, images)


def random_grayscale(images, *, config, generator):
    n = images.shape[0]
    pick = torch.rand(n, generator=generator, device=images.device) < config.grayscale_p
    return torch.where(pick.view(n, 1, 1, 1), _gray(images).expand_as(images), images)


def make_view(images, *, size, mean, std, config, generator):
    """One augmented, normalised view of a uint8 batch.

    Parameters
    ----------
    images : Tensor of shape (B, 3, H, W), uint8
    size : int
        Output side in pixels.
    mean, std : Tensor of shape (3,)
        Per-channel normalisation in [0, 1] units.
    config : AugmentConfig
    generator : torch.Generator

    Returns
    -------
    Tensor of shape (B, 3, size, size), float32
    """
    x = images.float().div_(255)
    x = random_resized_crop(x, size=size, config=config, generator=generator)
    x = color_jitter(x, config=config, generator=generator)
    x = random_grayscale(x, config=config, generator=generator)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
