"""Synthetic embeddings with known structure, shared by the engine tests."""

from __future__ import annotations

import numpy as np


def normalise(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clusters(sizes, *, dim=32, spread=0.3, seed=0):
    """Gaussian clusters on the unit sphere around random, nearly orthogonal centres.

    ``spread`` is the noise norm relative to the unit centre. Returns (embeddings
    (N, dim) float32 L2-normalised, cluster id per row (N,)).
    """
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((len(sizes), dim)))
    y = np.repeat(np.arange(len(sizes)), sizes)
    noise = rng.standard_normal((len(y), dim)) * spread / np.sqrt(dim)
    return normalise(centres[y] + noise), y
