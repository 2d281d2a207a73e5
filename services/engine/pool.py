"""A project's pool: the embedded images an engine ranks, fixed for the engine's life.

Images ingested later, or a switch of backbone, make a new pool and a new engine over it
(:mod:`services.engine.lifecycle`); nothing changes a pool in place, so every thread may read
it without a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.features.item_images import ImageCache


@dataclass(frozen=True, eq=False)
class Pool:
    """The items, their paths and embeddings, row by row.

    Parameters
    ----------
    backbone_key : str
        Folder key of the backbone whose embeddings these are.
    item_ids : ndarray of shape (N,), int64
    paths : tuple of str
        Path of each item, relative to ``images.root``.
    embeddings : ndarray of shape (N, D), float32, L2-normalised, read-only
    images : ImageCache
        Display copies of the project's images.

    Attributes
    ----------
    row_of : dict of int to int
        Item id -> row.
    """

    backbone_key: str
    item_ids: np.ndarray
    paths: tuple[str, ...]
    embeddings: np.ndarray
    images: ImageCache
    row_of: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (len(self.item_ids) == len(self.paths) == len(self.embeddings)):
            raise ValueError(
                f"pool rows disagree: {len(self.item_ids)} ids, {len(self.paths)} paths, {len(self.embeddings)} vectors"
            )
        object.__setattr__(self, "row_of", {int(item): row for row, item in enumerate(self.item_ids.tolist())})

    @classmethod
    def of(
        cls, *, backbone_key: str, item_ids: np.ndarray, paths: Sequence[str], embeddings: np.ndarray, root: Path
    ) -> Pool:
        """A pool that nothing can write to; it takes ``embeddings`` over (no copy of a float32 array:
        a pool of a million rows is gigabytes) and makes it read-only."""
        ids = np.array(item_ids, np.int64)
        vectors = np.asarray(embeddings, np.float32)
        ids.flags.writeable = vectors.flags.writeable = False
        return cls(backbone_key, ids, tuple(paths), vectors, ImageCache(Path(root)))
