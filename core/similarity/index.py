"""Similarity index: FAISS inner product on L2-normalised embeddings, ids are item ids."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np


@dataclass(frozen=True)
class IndexConfig:
    """How the index is built.

    Parameters
    ----------
    exact_max : int
        Pools up to this many items get an exact index (``IndexFlatIP``); larger ones an IVF index.
    lists_per_sqrt : float
        IVF lists = ``lists_per_sqrt * sqrt(n)``. FAISS suggests 4 to 16 for high query rates;
        1 trains 16x faster and queries here are interactive, one at a time.
    train_per_list : int
        Training sample for the IVF centroids, per list.
    nprobe : int
        Lists visited per query (64 of 1,000 at 1M items); see ``benchmarks/bench_index.py``
        for the recall@10 it gives.
    seed : int
        Seeds the training sample.

    IVF lists hold float16 codes (``QT_fp16``): half the memory of float32 at no measurable
    recall cost, since the embeddings are stored as float16 anyway.
    """

    exact_max: int = 200_000
    lists_per_sqrt: float = 1.0
    train_per_list: int = 64
    nprobe: int = 64
    seed: int = 0


class SimilarityIndex:
    """Nearest neighbours by cosine similarity, keyed by item id.

    Parameters
    ----------
    config : IndexConfig

    Attributes
    ----------
    index_ : faiss.IndexIDMap
        Wraps ``IndexFlatIP`` (exact) or ``IndexIVFScalarQuantizer`` (approximate).
    """

    def __init__(self, *, config=IndexConfig()):
        self.config = config

    @property
    def kind_(self):
        """``"exact"`` or ``"ivf"``."""
        return "exact" if isinstance(faiss.downcast_index(self.index_.index), faiss.IndexFlat) else "ivf"

    @property
    def ids_(self):
        """Item ids in the index, ndarray of shape (n,), int64, in insertion order."""
        return faiss.vector_to_array(self.index_.id_map).astype(np.int64)

    def __len__(self):
        return int(self.index_.ntotal)

    def fit(self, vectors, ids):
        """Build the index from scratch: exact up to ``config.exact_max`` items, IVF above.

        Parameters
        ----------
        vectors : ndarray of shape (n, d)
            Normalised here, so inner product is cosine similarity.
        ids : ndarray of shape (n,), int
            Item ids, unique.

        Returns
        -------
        self
        """
        vectors, ids = _prepare(vectors, ids)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique")
        n, d = vectors.shape
        if n <= self.config.exact_max:
            inner = faiss.IndexFlatIP(d)
        else:
            nlist = max(1, int(self.config.lists_per_sqrt * math.sqrt(n)))
            inner = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            sample = np.random.default_rng(self.config.seed).choice(
                n, min(n, self.config.train_per_list * nlist), replace=False
            )
            inner.train(vectors[np.sort(sample)])
            inner.nprobe = self.config.nprobe
        self.index_ = faiss.IndexIDMap(inner)
        self.index_.add_with_ids(vectors, ids)
        return self

    def add(self, vectors, ids):
        """Add items. An exact index that grows past ``config.exact_max`` is rebuilt as IVF.

        Parameters
        ----------
        vectors : ndarray of shape (m, d)
        ids : ndarray of shape (m,), int
            Not in the index yet.

        Returns
        -------
        self
        """
        vectors, ids = _prepare(vectors, ids)
        if np.isin(ids, self.ids_).any() or len(np.unique(ids)) != len(ids):
            raise ValueError("some ids are already in the index or repeated")
        if self.kind_ == "exact" and len(self) + len(ids) > self.config.exact_max:
            old = faiss.downcast_index(self.index_.index).reconstruct_n(0, len(self))
            return self.fit(np.concatenate([old, vectors]), np.concatenate([self.ids_, ids]))
        self.index_.add_with_ids(vectors, ids)
        return self

    def search(self, queries, k):
        """The ``k`` most similar items of each query.

        Parameters
        ----------
        queries : ndarray of shape (m, d)
        k : int

        Returns
        -------
        scores : ndarray of shape (m, k), float32
            Cosine similarities, best first.
        ids : ndarray of shape (m, k), int64
            Item ids; -1 where fewer than ``k`` items were found.
        """
        queries = _normalised(queries)
        return self.index_.search(queries, k)

    def save(self, path):
        """Write the index to ``path`` atomically (temporary file, fsync, rename).

        A reader that opens ``path`` gets the old index or the new one, never a partial file.
        """
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self.index_, str(temporary))
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @classmethod
    def load(cls, path, *, config=IndexConfig()):
        """Read an index written by :meth:`save`."""
        index = cls(config=config)
        index.index_ = faiss.read_index(str(path))
        return index


def _normalised(vectors):
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


def _prepare(vectors, ids):
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if np.ndim(vectors) != 2 or len(vectors) != len(ids) or ids.ndim != 1:
        raise ValueError(f"need vectors (n, d) and ids (n,), got {np.shape(vectors)} and {ids.shape}")
    return _normalised(vectors), ids
