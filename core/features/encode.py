"""Embedding an in-memory batch of images with a backbone."""

from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def encode_uint8(model, images, *, mean, std, batch_size=1024, device="cpu"):
    """L2-normalised embeddings of images already at the backbone's input size.

    Parameters
    ----------
    model : torch.nn.Module mapping (B, 3, S, S) to (B, D)
    images : ndarray of shape (N, S, S, 3), uint8
    mean, std : sequence of 3 floats, in [0, 1] units

    Returns
    -------
    ndarray of shape (N, D), float32
    """
    was_training = model.training
    model.eval()
    mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32), device=device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(np.asarray(std, dtype=np.float32), device=device).view(1, 3, 1, 1)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        features = model((batch - mean_t) / std_t).float()
        chunks.append(torch.nn.functional.normalize(features, dim=1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
