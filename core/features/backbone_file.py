"""Backbone files: weights and preprocessing in one safetensors file, no pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file

from core.features.nets import SmallResNet

FORMAT = "banana-backbone/1"
METADATA_KEY = "banana"


@dataclass(frozen=True)
class Preprocessing:
    """How images become backbone inputs: resize to a square, scale to [0, 1], normalise."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def save_backbone(path, model, *, preprocessing, info=None, dtype=torch.float16):
    """Write a :class:`SmallResNet` and its preprocessing to a safetensors file.

    Weights are stored in ``dtype`` (float16 halves the file; loading casts back
    to float32). ``info`` is free-form JSON-able provenance (recipe, data, figures).
    """
    tensors = {
        name: t.detach().to("cpu", dtype if t.is_floating_point() else t.dtype).contiguous()
        for name, t in model.state_dict().items()
    }
    header = dict(
        format=FORMAT,
        architecture=dict(name="small_resnet", widths=list(model.widths), blocks=list(model.blocks)),
        preprocessing=dict(
            image_size=int(preprocessing.image_size),
            mean=[float(v) for v in preprocessing.mean],
            std=[float(v) for v in preprocessing.std],
        ),
        info=info or {},
    )
    # One metadata key: safetensors writes several keys in random order, and the file's
    # hash is the weights identity, so the same weights must always give the same bytes.
    metadata = {METADATA_KEY: json.dumps(header, sort_keys=True)}
    save_file(tensors, str(path), metadata=metadata)


def read_header(path):
    """The JSON header of a backbone file: format, architecture, preprocessing, info."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    header = json.loads(metadata.get(METADATA_KEY, "{}"))
    if header.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a banana backbone file (format {header.get('format')!r}, "
            f"expected {FORMAT!r}); write one with `python -m app.cli ssl-train`."
        )
    return header


def load_backbone(path):
    """Load a backbone file written by :func:`save_backbone`.

    Returns
    -------
    model : SmallResNet in eval mode, float32, on the CPU
    preprocessing : Preprocessing
    info : dict
    """
    header = read_header(path)
    architecture = header["architecture"]
    model = SmallResNet(widths=tuple(architecture["widths"]), blocks=tuple(architecture["blocks"]))
    state = {name: t.float() if t.is_floating_point() else t for name, t in load_file(str(path)).items()}
    model.load_state_dict(state)
    prep = header["preprocessing"]
    preprocessing = Preprocessing(image_size=prep["image_size"], mean=tuple(prep["mean"]), std=tuple(prep["std"]))
    return model.eval(), preprocessing, header["info"]
