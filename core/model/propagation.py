"""Label spreading over the pool's kNN graph, and a linear probe that learns from it.

:class:`LabelSpreading` builds a sparse kNN graph of the pool once and spreads the labels
over it (Zhou et al. 2004, "Learning with local and global consistency"; the graph and
weights of Iscen et al. 2019, "Label propagation for deep semi-supervised learning"):
soft class scores for every pool row, from the labeled rows.

:class:`SemiSupervisedProbe` fits the usual :class:`~core.model.probe.LinearProbe` on the
labels plus confidently spread pseudo-labels. What it delivers is a plain linear probe,
served, stored and applied to new images like the one fit on labels alone.

Why the pseudo-label weight is chosen by cross-validation on the labels: spreading is a
kNN-style classifier whose error stops falling early, while the probe's own error keeps
falling. Pseudo-labels at a fixed weight therefore help at 20 labels and hurt at 1,000,
where the probe trained on its labels is already right more often than the graph on the
rows it pseudo-labels, and the pseudo-labels pull it towards the graph's mistakes.
Which regime a project is in depends on its backbone, classes and budget, not on a label
count that could be written down, so each fit measures it: held-out folds of the labels
score the probe fit with each candidate weight (spreading from the training folds only),
weight 0 (the probe on labels alone) always among them. The score is the held-out
log-loss after temperature scaling, averaged over a few fold splits, rather than the
accuracy: with 20 to 100 labels the held-out accuracy moves in steps of several points
and picked the weight little better than chance on CIFAR-10. The choice is the largest
weight within one standard error of the best (see :func:`_choose_weight`): the labels
decide where they can tell, and the graph's prior where they cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import log_softmax

from core.model.probe import LinearProbe, _fit_temperature
from core.similarity.index import IndexConfig, SimilarityIndex


@dataclass(frozen=True)
class PropagationConfig:
    """How the graph is built, labels spread and pseudo-labels weighted.

    Parameters
    ----------
    k : int
        Neighbours per pool row (the row itself excluded). The graph is the symmetric union
        of the kNN lists, so a row has at least ``k`` edges.
    gamma : float
        Edge weight ``max(cosine, 0) ** gamma``: close neighbours count more than the
        k-th (Iscen et al. use 3).
    alpha : float
        Clamping: the share of a row's score that comes from its neighbours rather than
        its own label, in ``(0, 1)``. 0.99, Zhou et al.'s and Iscen et al.'s value, lets
        labels travel far along the graph, which is what few labels need.
    max_iter, tol : int, float
        Conjugate-gradient iterations on ``(I - alpha S) F = Y`` and the relative residual
        at which it stops; each iteration is one sparse product, linear in the pool size.
    index : IndexConfig
        The kNN search (exact up to ``index.exact_max`` rows, IVF above).
    pseudo_weights : tuple of float
        Candidate total weights of the pseudo-labels, relative to the labels' total (0:
        the probe on labels alone), ascending. Cross-validation on the labels picks one
        per fit: the largest within one standard error of the lowest held-out log-loss.
    cv_folds, cv_repeats : int
        Folds of the labels for that choice (fewer when there are fewer labels), and how
        many different fold splits are averaged.
    unvalidated_weight : float
        The weight when cross-validation cannot measure anything: no fold has two
        classes left to train on, as with one label per class. The labels alone say the
        least they ever will then and pseudo-labels help most (Zhou et al.; at 20
        CIFAR-10 labels the gain still grew from weight 3 to 30), so the default is the
        largest candidate.
    max_pseudo : int
        Most pseudo-labels per fit, shared equally among the predicted classes (the most
        confident of each class), so that the fit's cost stops growing with the pool and
        no class dominates the pseudo-labels. On an 8,000-image pool, all of them
        (10,000) beat the 5,000 most confident by about half a point at 50 and 100 labels.
    """

    k: int = 15
    gamma: float = 3.0
    alpha: float = 0.99
    max_iter: int = 40
    tol: float = 1e-4
    index: IndexConfig = IndexConfig()
    pseudo_weights: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0)
    cv_folds: int = 3
    cv_repeats: int = 3
    unvalidated_weight: float = 30.0
    max_pseudo: int = 10_000


class LabelSpreading:
    """Zhou et al. label spreading over a symmetric, normalised kNN graph of the pool.

    Parameters
    ----------
    config : PropagationConfig

    Attributes
    ----------
    graph_ : scipy.sparse.csr_matrix of shape (N, N), float32
        ``S = D^-1/2 W D^-1/2``, ``W`` the symmetrised kNN weights; about ``2 k N`` entries.
    index_ : SimilarityIndex
        The pool's vectors, ids ``0 .. N-1``, for :meth:`extend`.
    n_samples_ : int
        Pool rows ``N``.
    """

    def __init__(self, *, config=PropagationConfig()):
        self.config = config

    def fit(self, X):
        """Build the kNN graph of the pool.

        Parameters
        ----------
        X : ndarray of shape (N, D)
            Pool embeddings; normalised here.

        Returns
        -------
        self
        """
        X = _check_2d(X, "X")
        n = len(X)
        if n < 2:
            raise ValueError(f"label spreading needs a pool of at least 2 rows; got {n}.")
        self.index_ = SimilarityIndex(config=self.config.index).fit(X, np.arange(n))
        k = min(self.config.k, n - 1)
        scores, neighbours = self.index_.search(X, k + 1)
        rows = np.repeat(np.arange(n), k + 1)
        cols = neighbours.ravel()
        weights = np.clip(scores.ravel(), 0, None) ** self.config.gamma
        keep = (cols >= 0) & (cols != rows) & (weights > 0)
        W = sp.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)
        W = W.maximum(W.T).tocsr()  # symmetric: an edge when either row lists the other
        degree = np.asarray(W.sum(axis=1)).ravel()
        inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0).astype(np.float32)
        self.graph_ = (sp.diags(inv_sqrt) @ W @ sp.diags(inv_sqrt)).astype(np.float32).tocsr()
        self.n_samples_ = n
        return self

    def spread(self, rows, y, *, classes=None):
        """Spread the labels of ``rows`` over the graph.

        Parameters
        ----------
        rows : ndarray of shape (n,), int
            Labeled pool rows.
        y : ndarray of shape (n,)
            Their classes.
        classes : array-like or None
            Classes to score beyond those in ``y`` (their column is 0).

        Returns
        -------
        classes : ndarray of shape (K,)
            Sorted; the columns of ``proba``.
        proba : ndarray of shape (N, K), float32
            Spread scores per pool row, normalised to sum to 1; uniform where no label
            reaches the row. A labeled row keeps mostly, not only, its own label.
        """
        rows, y = self._check_labels(rows, y)
        classes = np.unique(np.concatenate([y, np.asarray([] if classes is None else classes, dtype=y.dtype)]))
        Y = np.zeros((self.n_samples_, len(classes)), np.float32)
        column = np.searchsorted(classes, y)
        # Each class's labels carry the same total mass, so a class labeled 10 times does
        # not flood the graph over one labeled twice.
        counts = np.bincount(column, minlength=len(classes)).astype(np.float32)
        np.add.at(Y, (rows, column), 1 / counts[column])
        F = _conjugate_gradient(self._system, Y, max_iter=self.config.max_iter, tol=self.config.tol)
        return classes, _normalise_rows(F)

    def extend(self, X, proba):
        """Scores of new (non-pool) rows: their pool neighbours' spread scores, weighted as edges.

        Parameters
        ----------
        X : ndarray of shape (M, D)
        proba : ndarray of shape (N, K)
            From :meth:`spread`.

        Returns
        -------
        ndarray of shape (M, K), float32, rows summing to 1
        """
        X = _check_2d(X, "X")
        proba = np.asarray(proba, np.float32)
        if proba.shape[0] != self.n_samples_:
            raise ValueError(f"proba has {proba.shape[0]} rows but the pool has {self.n_samples_}.")
        scores, neighbours = self.index_.search(X, min(self.config.k, self.n_samples_))
        weights = np.where(neighbours >= 0, np.clip(scores, 0, None) ** self.config.gamma, 0)
        return _normalise_rows(np.einsum("mk,mkc->mc", weights, proba[neighbours.clip(0)]))

    def _system(self, F):
        """``(I - alpha S) F``: symmetric positive definite, as S's eigenvalues lie in [-1, 1]."""
        return F - self.config.alpha * (self.graph_ @ F)

    def _check_labels(self, rows, y):
        if not hasattr(self, "graph_"):
            raise ValueError("LabelSpreading is not fitted; call fit(pool) first.")
        rows, y = np.asarray(rows), np.asarray(y)
        if rows.ndim != 1 or y.ndim != 1 or len(rows) != len(y):
            raise ValueError(f"rows and y must be 1-D of one length; got shapes {rows.shape} and {y.shape}.")
        if len(rows) == 0:
            raise ValueError("label spreading needs at least one label.")
        if not np.issubdtype(rows.dtype, np.integer) or rows.min() < 0 or rows.max() >= self.n_samples_:
            raise ValueError(f"rows must be integer indices into the pool of {self.n_samples_} rows.")
        if len(np.unique(rows)) != len(rows):
            raise ValueError("rows must not repeat: one label per pool row.")
        return rows.astype(np.int64), y


class SemiSupervisedProbe:
    """A :class:`LinearProbe` fit on the labels plus pseudo-labels spread over the pool.

    Pseudo-labels are the spread class of unlabeled pool rows, at most
    ``config.max_pseudo`` of them, the most confident of each class in equal numbers. Row
    weights: each labeled class carries the same total (as ``class_weight="balanced"``),
    the labels ``n`` in all; the pseudo-labels ``w n`` in all, equal per class, and within
    a class in proportion to the confidence ``1 - H(p) / log K`` (Iscen et al.). ``w`` is
    chosen from ``config.pseudo_weights`` by cross-validation on the labels (see the module
    docstring), so the probe on labels alone (``w = 0``) wins when the labels show that
    pseudo-labels do not help.

    Parameters
    ----------
    config : PropagationConfig
    spreading : LabelSpreading or None
        A graph already fit on the pool passed to :meth:`fit` (built once per pool, reused
        by every fit); None builds one in each fit.
    probe_params : dict or None
        :class:`LinearProbe` parameters (``class_weight`` is set here). Default: no
        out-of-fold fits, no calibration, no warm start.

    Attributes
    ----------
    probe_ : LinearProbe
        The delivered model, fit with the chosen weight.
    classes_ : ndarray of shape (K,)
    pseudo_weight_ : float
        The chosen ``w``.
    cv_scores_ : dict of float to (float, float, float)
        Per candidate weight, the held-out log-loss (after temperature scaling) and
        accuracy of the labels, averaged over ``config.cv_repeats`` splits, and the
        standard error of its loss difference to the best weight. Empty when there were
        too few labels to cross-validate (``config.unvalidated_weight`` is used then).
    pseudo_rows_ : ndarray of shape (m,), int
        Pool rows used as pseudo-labels in the final fit (empty when ``w = 0``).
    pseudo_labels_ : ndarray of shape (m,)
    n_pseudo_ : int
        ``m``.
    spreading_ : LabelSpreading
    """

    def __init__(self, *, config=PropagationConfig(), spreading=None, probe_params=None):
        self.config = config
        self.spreading = spreading
        self.probe_params = probe_params

    def fit(self, X, rows, y, *, classes=None):
        """Fit on the pool and the labels of some of its rows.

        Parameters
        ----------
        X : ndarray of shape (N, D)
            Pool embeddings (the same pool as ``spreading``'s, when given).
        rows : ndarray of shape (n,), int
            Labeled pool rows, distinct.
        y : ndarray of shape (n,)
            Their classes (single-label).
        classes : array-like or None
            Known classes without labels yet, as for :meth:`LinearProbe.fit`.

        Returns
        -------
        self
        """
        X = _check_2d(X, "X")
        spreading = self.spreading
        if spreading is None:
            spreading = LabelSpreading(config=self.config).fit(X)
        elif getattr(spreading, "n_samples_", None) != len(X):
            raise ValueError(f"spreading was fit on {getattr(spreading, 'n_samples_', 0)} rows, X has {len(X)}.")
        self.spreading_ = spreading
        rows, y = spreading._check_labels(rows, y)
        self.pseudo_weight_ = self.config.unvalidated_weight
        self.cv_scores_ = self._cross_validate(X, rows, y, classes)  # sets pseudo_weight_ when it can
        pseudo_rows, pseudo_y, pseudo_sw = self._pseudo_labels(X, rows, y, classes, self.pseudo_weight_)
        self.probe_ = self._fit_probe(X, rows, y, pseudo_rows, pseudo_y, pseudo_sw, classes)
        self.pseudo_rows_, self.pseudo_labels_, self.n_pseudo_ = pseudo_rows, pseudo_y, len(pseudo_rows)
        self.classes_ = self.probe_.classes_
        return self

    def predict_proba(self, X):
        """``probe_.predict_proba``: ndarray of shape (M, K), columns following ``classes_``."""
        return self.probe_.predict_proba(X)

    def predict(self, X):
        """``probe_.predict``: ndarray of shape (M,)."""
        return self.probe_.predict(X)

    # ----- internals -----------------------------------------------------------------

    def _probe(self, **override):
        params = dict(n_folds=0, calibrate=False, warm_start=False)
        params.update(self.probe_params or {})
        params.update(override)
        params["class_weight"] = None  # the weights are set here, labels and pseudo-labels apart
        return LinearProbe(**params)

    def _cross_validate(self, X, rows, y, classes):
        """(log-loss, accuracy, standard error) per candidate weight; sets ``pseudo_weight_``.

        Each label's held-out loss is averaged over the repeats it was scored in. Returns {}
        and leaves ``pseudo_weight_`` alone when nothing can be measured (no fold has two
        classes to train on).
        """
        weights = sorted(set(self.config.pseudo_weights) | {0.0})
        if len(weights) == 1:
            return {}
        all_classes = self._classes(y, classes)
        candidates = np.setdiff1d(np.arange(len(X)), rows)
        losses = np.zeros((len(weights), len(y)))
        correct = np.zeros((len(weights), len(y)))
        times = np.zeros(len(y))
        for repeat in range(self.config.cv_repeats):
            folds = _stratified_folds(y, self.config.cv_folds, seed=repeat)
            if folds is None:
                return {}
            # A class missing from a fold's training labels gets logit -inf on its held-out rows.
            logits = np.full((len(weights), len(y), len(all_classes)), -np.inf, np.float32)
            scored = np.zeros(len(y), bool)
            for fold in range(folds.max() + 1):
                train, held = folds != fold, folds == fold
                if len(np.unique(y[train])) < 2:
                    continue  # nothing to separate in this fold
                # Spread from the training folds only, and never pseudo-label a held-out row.
                classes_, proba = self.spreading_.spread(rows[train], y[train], classes=classes)
                # Each weight's fit starts from the last one's: same optimum (convex), fewer iterations.
                probe = self._probe(warm_start=True)
                for i, w in enumerate(weights):
                    pseudo = _select_pseudo(classes_, proba, candidates, self.config.max_pseudo, w, train.sum())
                    probe = self._fit_probe(X, rows[train], y[train], *pseudo, classes, probe=probe)
                    columns = np.searchsorted(all_classes, probe.classes_)
                    logits[i][np.ix_(np.flatnonzero(held), columns)] = probe.decision_function(X[rows[held]])
                scored |= held
            if not scored.any():
                continue
            targets = (all_classes[None, :] == y[scored, None]).astype(np.float32)
            for i in range(len(weights)):
                loss, hit = _held_out_losses(logits[i][scored], targets)
                losses[i, scored] += loss
                correct[i, scored] += hit
            times[scored] += 1
        measured = times > 0
        if not measured.any():
            return {}
        losses, correct = losses[:, measured] / times[measured], correct[:, measured] / times[measured]
        self.pseudo_weight_, errors = _choose_weight(losses, np.asarray(weights))
        return {w: (float(losses[i].mean()), float(correct[i].mean()), float(errors[i])) for i, w in enumerate(weights)}

    @staticmethod
    def _classes(y, classes):
        return np.unique(np.concatenate([y, np.asarray([] if classes is None else classes, dtype=y.dtype)]))

    def _pseudo_labels(self, X, rows, y, classes, weight):
        if weight == 0:
            return np.zeros(0, np.int64), y[:0], np.zeros(0, np.float32)
        classes_, proba = self.spreading_.spread(rows, y, classes=classes)
        candidates = np.setdiff1d(np.arange(len(X)), rows)
        return _select_pseudo(classes_, proba, candidates, self.config.max_pseudo, weight, len(rows))

    def _fit_probe(self, X, rows, y, pseudo_rows, pseudo_y, pseudo_sw, classes, probe=None):
        labeled_sw = _balanced(y)
        return (probe or self._probe()).fit(
            X[np.concatenate([rows, pseudo_rows])],
            np.concatenate([y, pseudo_y]),
            classes=classes,
            out_of_fold=False,
            sample_weight=np.concatenate([labeled_sw, pseudo_sw]),
        )


def _select_pseudo(classes, proba, candidates, max_pseudo, weight, n_labels):
    """Pseudo-label rows, classes and weights: the most confident ``max_pseudo / K'`` of each
    predicted class (``K'`` classes predicted), total weight ``weight * n_labels``, equal per
    class, within a class in proportion to confidence."""
    empty = np.zeros(0, np.int64), classes[:0], np.zeros(0, np.float32)
    if weight == 0 or len(candidates) == 0 or len(classes) < 2:
        return empty
    p = proba[candidates]
    predicted = p.argmax(axis=1)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    confidence = np.clip(1 - entropy / np.log(len(classes)), 0, None)
    present = [c for c in range(len(classes)) if np.any((predicted == c) & (confidence > 0))]
    if not present:
        return empty
    per_class = max(1, max_pseudo // len(present))
    picked, labels, sw = [], [], []
    for c in present:
        members = np.flatnonzero((predicted == c) & (confidence > 0))
        members = members[np.argsort(-confidence[members], kind="stable")[:per_class]]
        picked.append(candidates[members])
        labels.append(np.full(len(members), classes[c]))
        sw.append(confidence[members] / confidence[members].sum() * weight * n_labels / len(present))
    return np.concatenate(picked), np.concatenate(labels), np.concatenate(sw).astype(np.float32)


def _held_out_losses(logits, targets):
    """Log-loss after temperature scaling, and correctness, of each held-out row.

    Parameters
    ----------
    logits : ndarray of shape (M, K)
    targets : ndarray of shape (M, K), one-hot

    Returns
    -------
    loss : ndarray of shape (M,)
        0 for rows whose class had no training label (logit -inf): they score the same
        under every weight.
    correct : ndarray of shape (M,), bool

    The temperature comes first so that a weight is not preferred for a sharper fit
    rather than a better ranking.
    """
    temperature = _fit_temperature(logits, targets, multi_label=False)
    true_logit = np.where(targets > 0, logits, 0).sum(axis=1)
    loss = np.zeros(len(logits))
    usable = np.isfinite(true_logit)
    if usable.any():
        log_p = log_softmax(logits[usable].astype(np.float64) / temperature, axis=1)
        loss[usable] = -np.nan_to_num(log_p, neginf=0.0)[targets[usable] > 0]
    return loss, logits.argmax(axis=1) == targets.argmax(axis=1)


def _choose_weight(losses, weights):
    """The largest weight whose mean held-out loss is within one standard error of the best.

    Parameters
    ----------
    losses : ndarray of shape (n_weights, n)
        Held-out loss of each label under each weight (``weights`` ascending).

    Returns
    -------
    weight : float
    standard_errors : ndarray of shape (n_weights,)
        Of each weight's mean loss difference to the best, paired over the labels.

    Breiman's one-standard-error rule, with the pseudo-labels as the regulariser: the
    pseudo-labels pull the probe towards the graph's smoothness prior, so a larger weight
    is the more regularised model, and the rule prefers it unless the labels show it
    worse. With few labels the error is wide and the prior wins (where it helps most);
    with many it is narrow and the weight follows the measured optimum down to 0.
    """
    means = losses.mean(axis=1)
    best = int(np.argmin(means))
    differences = losses - losses[best]
    errors = differences.std(axis=1, ddof=1) / np.sqrt(losses.shape[1]) if losses.shape[1] > 1 else np.zeros(len(means))
    eligible = np.flatnonzero(differences.mean(axis=1) <= errors)
    return float(weights[eligible.max()]), errors


def _balanced(y):
    """Balanced class weights: each class the same total, ``len(y)`` in all."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    return (len(y) / (len(counts) * counts[inverse])).astype(np.float32)


def _stratified_folds(y, n_folds, seed):
    """Fold id per label, round-robin within each class; None below 2 folds or 2 classes."""
    n_folds = min(n_folds, len(y))
    if n_folds < 2 or len(np.unique(y)) < 2:
        return None
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        folds[members] = (offset + np.arange(len(members))) % n_folds
        offset += len(members)
    return folds


def _conjugate_gradient(system, B, *, max_iter, tol):
    """Solve ``system(X) = B`` column by column (all columns at once) by conjugate gradients.

    ``system`` must be symmetric positive definite. Returns X of B's shape, float32.
    """
    X = np.zeros_like(B)
    R = B.copy()
    P = R.copy()
    rs = (R * R).sum(axis=0)
    stop = (tol * np.sqrt(rs)) ** 2
    for _ in range(max_iter):
        if np.all(rs <= stop):
            break
        AP = system(P)
        curvature = (P * AP).sum(axis=0)
        step = np.divide(rs, curvature, out=np.zeros_like(rs), where=curvature > 0)
        X += step * P
        R -= step * AP
        rs_new = (R * R).sum(axis=0)
        P = R + np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0) * P
        rs = rs_new
    return X


def _normalise_rows(F):
    F = np.clip(F, 0, None)
    total = F.sum(axis=1, keepdims=True)
    uniform = np.full_like(F, 1 / max(F.shape[1], 1))
    return np.where(total > 0, F / np.where(total > 0, total, 1), uniform).astype(np.float32)


def _check_2d(X, name):
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, D); got shape {X.shape}.")
    return X
