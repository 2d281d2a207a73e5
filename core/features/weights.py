"""Weights files: their identity (sha256) and safe, strict loading into a model."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


def file_sha256(path, *, chunk_bytes=1 << 22):
    """Hex sha256 of a file's bytes: the identity of a set of weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path):
    """Read a plain state_dict from ``.safetensors``, or a torch file with ``weights_only=True``.

    Tensors land on the CPU (``map_location="cpu"``); nothing is unpickled beyond tensors and containers.

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    ValueError
        When the file cannot be read safely or does not hold a flat name-to-tensor mapping.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, OSError, EOFError) as error:
        raise ValueError(
            f"{path} cannot be read as weights ({type(error).__name__}: {error}). Fix: save the "
            "model's state_dict with torch.save(model.state_dict(), PATH) or as .safetensors."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = list(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} holds {keys}, not a state_dict of tensors. Fix: save only "
            "model.state_dict() (e.g. checkpoint['state_dict'] of a training checkpoint)."
        )
    return state


def load_weights_strictly(model, state, *, path, strip_prefixes=(), ignore_prefixes=()):
    """Copy ``state`` into ``model``; every model weight must be present.

    Parameters
    ----------
    model : torch.nn.Module
    state : dict of str to Tensor
    path : path-like
        Named in errors.
    strip_prefixes : tuple of str
        Removed from the start of checkpoint keys (e.g. ``"module."`` of DataParallel).
    ignore_prefixes : tuple of str
        Checkpoint keys that may be left over (training heads the backbone does not keep).

    Raises
    ------
    ValueError
        When a model weight is missing, an unknown key is left over, or a shape differs:
        a partly random model is never returned.
    """
    for prefix in strip_prefixes:
        state = {key.removeprefix(prefix): value for key, value in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(key for key in set(state) - set(expected) if not key.startswith(ignore_prefixes))
    wrong_shape = sorted(key for key in set(state) & set(expected) if state[key].shape != expected[key].shape)
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{path} does not fit this architecture: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), wrong shape {wrong_shape[:5]}. "
            "Fix: name the architecture the weights were trained with."
        )
    model.load_state_dict({key: state[key] for key in expected})
