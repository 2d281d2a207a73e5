"""Published checkpoint layouts turned into timm's: one converter per format.

Each converter takes the checkpoint's state dict and the timm model it will be loaded into
and returns a state dict with the model's key names. timm's own filters are used where they
exist (``vision_transformer.checkpoint_filter_fn`` knows the DINO and DINOv2 layouts).
"""

from __future__ import annotations

import math

import torch


def dinov2_pos_embed(pos_embed, grid):
    """Resample a square ViT position embedding to ``grid`` patches per side, as DINOv2 does.

    DINOv2 interpolates its 37x37 table at every forward pass with a bicubic scale factor of
    ``(grid + 0.1) / 37`` and no antialiasing (FAIR's ``interpolate_pos_encoding``); doing the
    same once at load time gives the original model's features at this input size exactly,
    where timm's own resampling (by output size, antialiased) would give slightly different ones.

    Parameters
    ----------
    pos_embed : Tensor of shape (1, 1 + N, D)
        Class-token position first, then an N = M x M patch grid.
    grid : int
        Patches per side of the input the model will see.

    Returns
    -------
    Tensor of shape (1, 1 + grid * grid, D)
    """
    patches = pos_embed.shape[1] - 1
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"pos_embed of {patches} patches is not a square grid")
    if side == grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    table = pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = (grid + 0.1) / side
    table = torch.nn.functional.interpolate(table, scale_factor=(scale, scale), mode="bicubic")
    table = table.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat([pos_embed[:, :1].float(), table], dim=1).to(pos_embed.dtype)


def vit(state, model):
    """DINO / DINOv2 / timm ViT checkpoints: position table resampled the DINOv2 way, then timm's filter."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = dict(state)
    if "pos_embed" in state:
        state["pos_embed"] = dinov2_pos_embed(state["pos_embed"], model.patch_embed.grid_size[0])
    return checkpoint_filter_fn(state, model)


def same_order(state, model):
    """A checkpoint of the same network under other names (e.g. lukemelas-style ``_blocks.0._bn1``).

    Parameters and buffers are matched by position, and every pair must agree in shape, so a
    checkpoint of another architecture is refused rather than loaded into the wrong layers.
    """
    targets = list(model.state_dict().items())
    sources = [(key, value) for key, value in state.items() if not key.startswith(("_fc.", "classifier."))]
    targets = [(key, value) for key, value in targets if not key.startswith("classifier.")]
    if len(sources) != len(targets):
        raise ValueError(f"the checkpoint has {len(sources)} tensors, the architecture {len(targets)}")
    mismatched = [
        f"{s} {tuple(sv.shape)} -> {t} {tuple(tv.shape)}"
        for (s, sv), (t, tv) in zip(sources, targets)
        if sv.shape != tv.shape
    ]
    if mismatched:
        raise ValueError(f"tensors do not line up with the architecture: {mismatched[:3]}")
    return {target: value for (_, value), (target, _) in zip(sources, targets)}


def timm_native(state, model):
    """Keys already match (timm's own files, and torchvision-layout ResNets, whose names timm keeps)."""
    return dict(state)


CONVERTERS = {"vit": vit, "same_order": same_order, "timm": timm_native}
