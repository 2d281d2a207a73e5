"""Each pool item's similarity to its nearest labeled item, kept current as labels arrive.

New labels cost (new labels x pool) work, not (all labels x pool): the maximum over
labeled items only ever grows when labels are added. A removed label (an undo, a
relabel) costs (removed labels x pool) to find the items it was nearest to, then
(those items x remaining labels). A retrain changes predictions, not similarities:
the state only keeps the new probe's pool predictions (:meth:`SimilarityState.predictions`).
:meth:`SimilarityState.refresh` is the full recompute, and the check that the
incremental paths are right. The products run in :mod:`core.similarity.pool_kernels`: float32, or
8-bit codes of the pool for large pools (there a pair's similarity never depends on the
rest of the call, so incremental and full recomputes agree bit for bit).
"""

from __future__ import annotations

import numpy as np

from core.model.pool_predictions import PoolPredictions
from core.selection.scorers import typicality
from core.similarity.pool_kernels import pool_kernel

_TIE = 1e-5  # a removed label "may have set" an item's maximum within this (recomputed, so only costs time)


class SimilarityState:
    """Nearest-labeled cosine similarity of every pool item, overall and per class.

    Not thread-safe: one writer at a time.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
        L2-normalised rows. Kept by reference, never copied (a memmap works);
        float32 is fastest, other dtypes are cast one block at a time.
    kernel : {"auto", "float32", "int8"}
        How similarities are computed (:func:`core.similarity.pool_kernels.pool_kernel`): "auto"
        uses 8-bit codes of the pool from 100,000 items on (within ~0.01 of float32,
        several times faster), float32 below.
    label_block : int
        Labels multiplied against the pool at once.
    n_threads : int or None
        Threads that share the pool's rows in the float32 kernel; None: one per CPU core.

    Attributes
    ----------
    nearest_similarity_ : ndarray of shape (N,), float32
        Largest cosine similarity to any labeled item; -inf while nothing is labeled.
    nearest_index_ : ndarray of shape (N,), int64
        Pool index of that labeled item; -1 while nothing is labeled.
    classes_ : ndarray of shape (C,)
        Classes with at least one label, sorted.
    class_similarity_ : ndarray of shape (C, N), float32
        Largest cosine similarity to a labeled item of each class.
    labeled_ : ndarray of shape (N,), bool
    """

    def __init__(self, embeddings, *, kernel="auto", label_block=1024, n_threads=None):
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, D); got shape {embeddings.shape}.")
        self.embeddings = embeddings
        self.kernel = kernel
        self.label_block = label_block
        self.n_threads = n_threads
        self._kernel = pool_kernel(embeddings, kernel, n_threads=n_threads)
        self._reset()

    def _reset(self):
        n = len(self.embeddings)
        self.nearest_similarity_ = np.full(n, -np.inf, np.float32)
        self.nearest_index_ = np.full(n, -1, np.int64)
        self.classes_ = np.zeros(0)
        self.class_similarity_ = np.zeros((0, n), np.float32)
        self.labeled_ = np.zeros(n, bool)
        self._pair_rows, self._pair_classes = np.zeros(0, np.int64), np.zeros(0)  # the (row, class) labels held

    def add_labels(self, indices, labels):
        """Fold newly labeled items in: (new labels x pool) work.

        Parameters
        ----------
        indices : array-like of shape (L,), int
            Pool rows; a row may repeat with several labels (multi-label).
        labels : array-like of shape (L,)
            Class of each (row, label) pair.

        Returns
        -------
        self

        Notes
        -----
        A relabeled item still counts for its old class until that label is removed
        (:meth:`remove_labels`).
        """
        indices, labels = self._validate(indices, labels)
        if len(indices):
            self._grow_classes(labels)
            self._pair_rows = np.r_[self._pair_rows, indices]
            self._pair_classes = (
                np.concatenate([self._pair_classes, labels]) if len(self._pair_classes) else labels.copy()
            )
            self._fold_in(indices, labels)
        return self

    def remove_labels(self, indices, labels):
        """Take (row, class) labels out (an undo, or the old class of a relabel).

        (removed labels x pool) work finds the items whose maximum a removed label may
        have set; only those are recomputed, against the remaining labels. A class
        left without labels is dropped from ``classes_``. Same arguments as
        :meth:`add_labels`; returns self.
        """
        indices, labels = self._validate(indices, labels)
        if len(indices) == 0:
            return self
        keep = np.ones(len(self._pair_rows), bool)
        for row, label in zip(indices.tolist(), labels.tolist()):
            match = np.flatnonzero(keep & (self._pair_rows == row) & (self._pair_classes == label))
            if len(match) == 0:
                raise ValueError(f"pool row {row} has no label {label!r} to remove.")
            keep[match[0]] = False
        self._pair_rows, self._pair_classes = self._pair_rows[keep], self._pair_classes[keep]
        self.labeled_[indices] = False
        self.labeled_[self._pair_rows] = True
        self._recompute_classes(indices, labels)
        self._recompute_nearest(np.flatnonzero(np.isin(self.nearest_index_, indices[~self.labeled_[indices]])))
        return self

    def refresh(self, indices, labels):
        """Recompute everything from the full labeled set: (all labels x pool) work.

        Same arguments as :meth:`add_labels`; returns self.
        """
        indices, labels = self._validate(indices, labels)
        self._reset()
        return self.add_labels(indices, labels)

    def similarity_to_class(self, classes, rows=None):
        """Similarity of each item to the nearest labeled item of a given class
        (e.g. its predicted class); -inf where that class has no label.

        Parameters
        ----------
        classes : ndarray of shape (M,)
            One class per item of ``rows``.
        rows : ndarray of shape (M,), int, or None
            Pool rows; all N when None.

        Returns
        -------
        ndarray of shape (M,), float32
        """
        rows = np.arange(len(self.embeddings)) if rows is None else np.asarray(rows)
        classes = np.asarray(classes)
        out = np.full(len(rows), -np.inf, np.float32)
        if len(self.classes_) == 0:
            return out
        position = np.searchsorted(self.classes_, classes).clip(0, len(self.classes_) - 1)
        known = self.classes_[position] == classes
        out[known] = self.class_similarity_[position[known], rows[known]]
        return out

    def predictions(self, probe):
        """:class:`core.model.pool_predictions.PoolPredictions` of ``probe`` over this pool, kept
        for the latest probe only: a retrain predicts the pool once, not once per selection."""
        if getattr(self, "_predictions", None) is None or not self._predictions.is_current(probe):
            self._predictions = PoolPredictions(self.embeddings, probe)
        return self._predictions

    def typicality(self, *, k=20, reference_size=10_000, seed=0):
        """:func:`core.selection.scorers.typicality` of the pool against a random reference sample
        of at most ``reference_size`` items, cached (it does not depend on labels).

        Returns
        -------
        ndarray of shape (N,)
        """
        key = (k, reference_size, seed)
        if getattr(self, "_typicality_key", None) != key:
            n = len(self.embeddings)
            reference = np.sort(np.random.default_rng(seed).choice(n, min(n, reference_size), replace=False))
            self._typicality = typicality(
                self.embeddings, k=k, reference=self.embeddings[reference], reference_index=reference
            )
            self._typicality_key = key
        return self._typicality

    # ----- internals -----------------------------------------------------------------

    def _recompute_classes(self, rows, labels):
        """Per-class maxima that the removed (``rows``, ``labels``) may have set, from the
        remaining labels of that class; classes left without labels are dropped."""
        columns = np.searchsorted(self.classes_, labels).tolist()
        queries = np.asarray(self.embeddings[rows], dtype=np.float32)
        affected = {column: [] for column in columns}
        for found in self._kernel.scan(queries, lambda b0, sims: self._affected_block(b0, sims, columns)):
            for column, items in found:
                affected[column].append(items)
        for column, items in affected.items():
            items = np.unique(np.concatenate(items))
            same_class = self._pair_rows[self._pair_classes == self.classes_[column]]
            self.class_similarity_[column, items] = self._max_similarity(items, same_class)[0]
        remaining = np.isin(self.classes_, self._pair_classes)
        if not remaining.all():
            self.classes_, self.class_similarity_ = self.classes_[remaining], self.class_similarity_[remaining]

    def _affected_block(self, b0, sims, columns):
        """(class column, pool rows from b0 where that query may have set the column's maximum)."""
        found = []
        for i, column in enumerate(columns):
            table = self.class_similarity_[column, b0 : b0 + sims.shape[1]]
            found.append((column, b0 + np.flatnonzero(sims[i] >= table - _TIE)))
        return found

    def _recompute_nearest(self, items):
        """Nearest labeled item of ``items`` from scratch (their nearest was unlabeled)."""
        labeled = np.unique(self._pair_rows)
        self.nearest_similarity_[items], best = self._max_similarity(items, labeled)
        self.nearest_index_[items] = labeled[best] if len(labeled) else -1

    def _max_similarity(self, items, rows):
        """Largest similarity of each of ``items`` to ``rows`` and its position in ``rows``
        (-inf and -1 when ``rows`` is empty)."""
        if len(rows) == 0:
            return np.full(len(items), -np.inf, np.float32), np.full(len(items), -1, np.int64)
        return self._kernel.best_match(np.asarray(self.embeddings[rows], dtype=np.float32), items)

    def _validate(self, indices, labels):
        indices, labels = np.asarray(indices, dtype=np.int64).ravel(), np.asarray(labels).ravel()
        if len(indices) != len(labels):
            raise ValueError(f"got {len(indices)} indices but {len(labels)} labels.")
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self.embeddings)):
            raise ValueError(f"indices must be pool rows in [0, {len(self.embeddings)}).")
        return indices, labels

    def _grow_classes(self, labels):
        new = np.setdiff1d(np.unique(labels), self.classes_)
        if len(new) == 0:
            return
        classes = np.union1d(self.classes_, new) if len(self.classes_) else new
        table = np.full((len(classes), len(self.embeddings)), -np.inf, np.float32)
        table[np.searchsorted(classes, self.classes_)] = self.class_similarity_
        self.classes_, self.class_similarity_ = classes, table

    def _fold_in(self, indices, labels):
        """Max-update every state array with the similarities of ``indices`` x pool."""
        self.labeled_[indices] = True
        column = np.searchsorted(self.classes_, labels)
        order = np.argsort(column, kind="stable")
        indices, column = indices[order], column[order]
        for q0 in range(0, len(indices), self.label_block):
            rows, cols = indices[q0 : q0 + self.label_block], column[q0 : q0 + self.label_block]
            queries = np.asarray(self.embeddings[rows], dtype=np.float32)
            starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])  # one run of rows per class
            runs = list(zip(cols[starts].tolist(), starts.tolist(), np.r_[starts[1:], len(rows)].tolist()))
            self._kernel.scan(queries, lambda b0, sims, rows=rows, runs=runs: self._update_block(b0, sims, rows, runs))

    def _update_block(self, b0, sims, rows, runs):
        """Max-update the state's columns b0.. with ``sims`` (labels x block), in place.

        ``runs``: (class column, first row, end row) of each class's rows of ``sims``.
        """
        b1 = b0 + sims.shape[1]
        value = None
        for column, a, b in runs:
            best = sims[a] if b - a == 1 else sims[a:b].max(axis=0)
            table = self.class_similarity_[column, b0:b1]
            np.maximum(table, best, out=table)
            value = best.copy() if value is None else np.maximum(value, best, out=value)
        nearest = self.nearest_similarity_[b0:b1]
        closer = np.flatnonzero(value > nearest)
        if len(closer) == 0:
            return
        nearest[closer] = value[closer]
        # argmax returns the first maximal row: ties go to the earliest label, as in a full recompute.
        self.nearest_index_[b0 + closer] = rows[sims[:, closer].argmax(axis=0)]
