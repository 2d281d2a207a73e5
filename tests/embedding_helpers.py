"""Small files for the embedding tests: a tiny random-init backbone file and image folders."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.features.backbone_file import Preprocessing, save_backbone
from core.features.nets import SmallResNet

TINY_PREPROCESSING = Preprocessing(image_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def write_tiny_backbone(path, *, seed=0):
    """A random-init SmallResNet (32-d) in our backbone file format; returns the path."""
    torch.manual_seed(seed)
    model = SmallResNet(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))
    save_backbone(path, model, preprocessing=TINY_PREPROCESSING, dtype=torch.float32)
    return path


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_colour_images(folder, *, per_colour=4, seed=0):
    """Noisy images of three colours, of varied sizes and formats; returns their paths, sorted."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgb in COLOURS.items():
        for i in range(per_colour):
            height, width = int(rng.integers(20, 48)), int(rng.integers(20, 48))
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
            path = folder / f"{name}_{i}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(pixels).save(path)
            paths.append(path)
    return sorted(paths)


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from core.features.backbones import build_backbone
    from core.features.embedding_store import EmbeddingStore

    backbone_name, store_folder, release = sys.argv[1:]
    backbone = build_backbone(backbone_name)
    with EmbeddingStore.open_for_writing(store_folder, backbone=backbone.describe(), dim=backbone.embed_dim):
        print("holding", flush=True)
        while not Path(release).exists():
            time.sleep(0.05)
""")


@contextmanager
def store_held_elsewhere(backbone_name, folder, release):
    """Another process holds the writer lock of the store in ``folder`` until the file ``release``
    exists (or the block ends); yields that process."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(backbone_name), str(folder), str(release)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        Path(release).touch()
        holder.wait(30)
        holder.stdout.close()
