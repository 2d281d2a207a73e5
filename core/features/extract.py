"""Batched embedding of image files into an :class:`~core.features.embedding_store.EmbeddingStore`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.images.preprocess import JpegBytes, decode_on_device, load_image, normalise, read_for_device


@dataclass(frozen=True)
class ExtractConfig:
    """How extraction runs.

    Parameters
    ----------
    batch_size : int
    num_workers : int or None
        DataLoader processes decoding images; None means one less than the CPU count, 1 to 8.
        0 decodes in the calling process.
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    half : bool
        Run the model in float16 (cuda and mps only).
    flush_items : int
        Vectors are synced to the store at least every this many items; a killed run loses at most these.
    gpu_decode : bool
        On cuda, workers only read JPEG files and the GPU decodes, resizes and crops them
        (:func:`core.images.preprocess.decode_on_device`); other formats decode in the workers as usual.
        Ignored on other devices. Untested on a GPU so far.
    """

    batch_size: int = 64
    num_workers: int | None = None
    device: str = "cpu"
    half: bool = False
    flush_items: int = 1024
    gpu_decode: bool = False

    def workers(self):
        if self.num_workers is not None:
            return self.num_workers
        return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class Failure:
    """An item whose file could not be embedded; the message names the file, reason and fix."""

    item_id: int
    message: str


@dataclass
class ExtractReport:
    """What one extraction run did.

    Attributes
    ----------
    embedded : int
        Items embedded in this run.
    already_done : int
        Requested items the store already held.
    failures : list of Failure
    """

    embedded: int = 0
    already_done: int = 0
    failures: list[Failure] = field(default_factory=list)


class _ImageFiles(Dataset):
    """Decodes files in DataLoader workers; a bad file yields its error text instead of pixels."""

    def __init__(self, paths, recipe, *, jpeg_bytes=False):
        self.paths, self.recipe = paths, recipe
        self.read = read_for_device if jpeg_bytes else load_image

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            return index, self.read(path, self.recipe), ""
        except Exception as error:  # any decoder failure is this one file's problem; the run goes on
            return index, None, _cannot_decode(path, error)


def _cannot_decode(path, error):
    return (
        f"{path}: cannot be decoded for embedding ({type(error).__name__}: {error}). "
        "Fix: replace or remove the file, then run embed again."
    )


def _collate(samples):
    good = [(index, image) for index, image, _ in samples if image is not None]
    bad = [(index, message) for index, image, message in samples if image is None]
    indices = torch.tensor([index for index, _ in good], dtype=torch.long)
    images = [image for _, image in good]
    if any(isinstance(image, JpegBytes) for image in images):
        return indices, images, bad  # decoded on the device
    images = torch.stack(images) if good else None
    return indices, images, bad


def extract_embeddings(backbone, store, item_ids, paths, *, config=ExtractConfig(), progress=None):
    """Embed the given items that ``store`` does not hold yet, resuming any earlier run.

    Rows are added to the store for new ids; images are decoded and preprocessed by
    ``backbone.recipe`` in DataLoader workers, embedded under ``torch.inference_mode``,
    L2-normalised and written to the store every ``config.flush_items`` items.

    Parameters
    ----------
    backbone : core.features.backbones.Backbone
        Its model is moved to ``config.device`` (and float16 when ``config.half``).
    store : EmbeddingStore
        Opened for writing, with ``dim == backbone.embed_dim``.
    item_ids : sequence of int, length N
    paths : sequence of str, length N
        File of each item.
    config : ExtractConfig
    progress : callable, optional
        Called as ``progress(finished, total)`` after each batch; ``total`` counts this run's items.

    Returns
    -------
    ExtractReport
    """
    if store.dim != backbone.embed_dim:
        raise ValueError(
            f"store {store.folder} has dim {store.dim}, backbone {backbone.name} gives {backbone.embed_dim}"
        )
    device, dtype = _device_and_dtype(config)
    item_ids = np.asarray(item_ids, np.int64)
    store.add_ids(item_ids)
    store_ids = store.ids
    row_of = dict(zip(store_ids.tolist(), range(len(store_ids))))
    rows = np.array([row_of[i] for i in item_ids.tolist()], np.int64)
    pending = ~store.done_mask(len(store_ids))[rows]
    report = ExtractReport(already_done=int((~pending).sum()))
    todo_rows, todo_ids = rows[pending], item_ids[pending]
    todo_paths = [paths[i] for i in np.flatnonzero(pending)]
    if len(todo_rows) == 0:
        return report
    files = _ImageFiles(todo_paths, backbone.recipe, jpeg_bytes=config.gpu_decode and device.type == "cuda")
    loader = DataLoader(
        files,
        batch_size=config.batch_size,
        num_workers=config.workers(),
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    model = backbone.model.to(device=device, dtype=dtype).eval()
    buffer_rows, buffer_vectors, finished = [], [], 0
    with torch.inference_mode():
        for indices, images, bad in loader:
            if isinstance(images, list):  # JPEG bytes to decode on the device (config.gpu_decode)
                images, failed = decode_on_device(images, backbone.recipe, device)
                bad += [(int(indices[p]), _cannot_decode(todo_paths[indices[p]], error)) for p, error in failed.items()]
                indices = indices[[p for p in range(len(indices)) if p not in failed]]
            report.failures.extend(Failure(int(todo_ids[index]), message) for index, message in bad)
            if images is not None:
                batch = normalise(images.to(device, non_blocking=True), backbone.recipe, dtype=dtype)
                features = torch.nn.functional.normalize(model(batch).float(), dim=1)
                buffer_rows.append(todo_rows[indices.numpy()])
                buffer_vectors.append(features.cpu().numpy())
            finished += len(indices) + len(bad)
            if sum(map(len, buffer_rows)) >= config.flush_items:
                report.embedded += _flush(store, buffer_rows, buffer_vectors)
            if progress is not None:
                progress(finished, len(todo_rows))
    report.embedded += _flush(store, buffer_rows, buffer_vectors)
    return report


def _flush(store, buffer_rows, buffer_vectors):
    if not buffer_rows:
        return 0
    rows = np.concatenate(buffer_rows)
    store.write_rows(rows, np.concatenate(buffer_vectors))
    buffer_rows.clear()
    buffer_vectors.clear()
    return len(rows)


def _device_and_dtype(config):
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {config.device} is not available here (torch.cuda.is_available() is False); use --device cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {config.device} is not available here; use --device cpu")
    if config.half and device.type == "cpu":
        raise ValueError("half precision runs on cuda or mps only; drop --half or pass --device cuda")
    return device, torch.float16 if config.half else torch.float32
