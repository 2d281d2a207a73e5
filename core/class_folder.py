"""Reading an ImageFolder-style tree (``root/<class>/<image>``) into memory.

Class folder names are ground truth for evaluation and simulated annotators only;
selection logic never calls this.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from core.decode import DRAFT_MARGIN, open_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def decode_square(path, size):
    """Decode an image as :func:`core.decode.open_rgb` does (a JPEG reduced while both sides
    stay at least twice ``size``), resize its shorter side to ``size`` and centre-crop a square."""
    image = open_rgb(path, min_side=DRAFT_MARGIN * size)
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_many(paths, *, size, workers=1):
    """Decode many images in parallel; returns (N, size, size, 3) uint8."""
    decode = partial(decode_square, size=size)
    if workers <= 1:
        return np.stack([decode(p) for p in paths]) if paths else np.zeros((0, size, size, 3), np.uint8)
    with ProcessPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(decode, paths, chunksize=256)))


def list_class_folder(root):
    """Image files under ``root/<class>/`` with their class index.

    Returns
    -------
    paths : list of Path, sorted by class then file name
    labels : ndarray of shape (N,), int — index into ``classes``
    classes : list of str, sorted
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"labeled folder {root} does not exist; pass a folder of <class>/<image> files")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(f"labeled folder {root} holds no images in class subfolders (<class>/<image>)")
    return paths, np.array(labels), classes


def read_class_folder(root, *, size, workers=1):
    """Every image under ``root/<class>/`` at ``size`` x ``size``.

    Returns
    -------
    images : ndarray of shape (N, size, size, 3), uint8
    labels, paths, classes : as :func:`list_class_folder` returns them
    """
    paths, labels, classes = list_class_folder(root)
    return decode_many(paths, size=size, workers=workers), labels, paths, classes
