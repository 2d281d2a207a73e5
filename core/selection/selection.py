"""The one public selection function: which unlabeled items to ask about next.

Used by the app, the CLI and the simulator. Its signature is stable:

    select(embeddings, labeled_idx, labels, n, *, strategy="default", probe=None,
           state=None, config=SelectionConfig(), rng=None) -> Selection
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.quality.audit import draw_audits
from core.selection.scorers import STRATEGIES, UNCERTAINTY, band_parameters, get_scores
from core.selection.typical import typical_cluster_picks
from core.similarity.similarity_state import SimilarityState

ALL_STRATEGIES = (*STRATEGIES, "typicality")
PART_NAMES = ("score", "uncertainty", "band", "novelty", "typicality", "nearest_similarity", "class_similarity")


@dataclass(frozen=True)
class SelectionConfig:
    """Knobs of :func:`select`; the defaults are the product's."""

    uncertainty: str = "margin"  # used by "default": margin, entropy or least_confidence
    band_center_quantile: float = 0.5  # of the unlabeled items' nearest-labeled similarity
    band_width_quantiles: tuple[float, float] = (0.25, 0.75)  # width = half this spread
    band_center: float | None = None  # fixed cosine centre instead of the quantile
    band_width: float | None = None  # fixed cosine width instead of the quantiles
    discovery_share: float = 0.2  # of "default" picks, while some class has few labels
    discovery_min_labels: int = 3  # "few labels" means fewer than this
    audit_share: float = 0.05  # of all picks, uniform at random, for unbiased accuracy
    # "default" also weighs typicality ** typicality_power (0 turns it off) while the labels
    # number fewer than typicality_labels_per_class x the classes known: typical items
    # teach most early on, uncertainty alone later. 8 and 50 (with typicality_k 10)
    # beat other settings tried on bundled-backbone CIFAR-10 (10k pool, 3 seeds).
    typicality_power: float = 8.0
    typicality_labels_per_class: int = 50
    typicality_k: int = 10  # neighbours that typicality averages over; 10 beat 5 and 20
    density_reference: int = 10_000  # pool sample that typicality is measured against
    shortlist: int = 2_000  # best candidates per score re-scored as the batch fills
    kmeans_sample: int = 20_000  # pool sample that cold-start k-means is fit on


@dataclass(frozen=True)
class Selection:
    """What to ask next, best first.

    Attributes
    ----------
    indices : ndarray of shape (n,), int
        Pool rows, in the order to ask them.
    score_parts : dict of str -> ndarray of shape (n,)
        Per pick: ``score`` (what ranked it), ``uncertainty``, ``band``, ``novelty``,
        ``typicality`` (a ``"default"`` score's :func:`core.selection.scorers.typical_preference`),
        ``nearest_similarity`` (to the labeled items and the earlier picks of this batch), ``class_similarity`` (to the nearest labeled item of
        the predicted class). NaN where a part was not used or does not apply.
    source : ndarray of shape (n,), str
        The rule that chose each pick: the strategy's name, ``"discovery"``,
        ``"cold_start"`` or ``"audit"`` (uniform at random; see :mod:`core.quality.audit`).
    predicted : ndarray of shape (n,) or None
        The probe's prediction for each pick at ask time (None without a probe).
    band : tuple of (float, float) or None
        Centre and width of the similarity band used.
    """

    indices: np.ndarray
    score_parts: dict
    source: np.ndarray
    predicted: np.ndarray | None
    band: tuple[float, float] | None


def select(
    embeddings,
    labeled_idx,
    labels,
    n,
    *,
    strategy="default",
    probe=None,
    state=None,
    config=SelectionConfig(),
    rng=None,
):
    """Choose the next ``n`` unlabeled items to ask about.

    Strategies
    ----------
    ``"default"``
        uncertainty x mid-range band (x typicality ** ``typicality_power`` while the
        labels number fewer than ``typicality_labels_per_class`` x the classes known),
        with batch diversity; while some class has fewer than ``discovery_min_labels``
        labels a ``discovery_share`` of picks (all of them while fewer than two classes
        are known) go to discovery instead.
    ``"margin"``, ``"entropy"``, ``"least_confidence"``
        top uncertainty; random while there is no probe with two classes.
    ``"band_only"``
        the band alone, with batch diversity.
    ``"discovery"``
        novelty x typicality, with batch diversity.
    ``"typicality"``
        the most typical item of each of the least-labeled k-means clusters (TypiClust).
    ``"random"``
        uniform.

    Every strategy but ``"random"`` and the uncertainty ones starts (0 labels) with the
    most typical items of ``n`` k-means clusters. Batch diversity: each pick counts as
    labeled while the rest of the batch is chosen (its similarity row raises the
    nearest-labeled similarity of the candidates), among the ``shortlist`` best
    candidates of each score. Independently of the strategy, each pick is an audit
    pick (uniform over the unlabeled items) with probability ``audit_share``.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
        L2-normalised pool embeddings.
    labeled_idx : array-like of shape (L,), int
        Pool rows that have labels.
    labels : array-like of shape (L,), or (L, K) 0/1 indicator for a multi-label probe
        whose columns follow ``probe.classes_``.
    n : int
        How many to pick (fewer if fewer are unlabeled).
    strategy : str
        One of :data:`ALL_STRATEGIES`.
    probe : fitted :class:`core.model.probe.LinearProbe` or None
    state : :class:`core.similarity.similarity_state.SimilarityState` or None
        Kept current with the same labels; built (all labels x pool work) when None.
        It also keeps the probe's pool predictions, so a caller that passes the same
        state predicts the pool once per probe, not once per call.
    config : SelectionConfig
    rng : numpy.random.Generator, int or None

    Returns
    -------
    Selection
    """
    labeled_idx, labels, n = _validate(embeddings, labeled_idx, labels, n, strategy, probe, state)
    rng = np.random.default_rng(rng)
    labeled = np.zeros(len(embeddings), bool)
    labeled[labeled_idx] = True
    unlabeled = np.flatnonzero(~labeled)
    n = min(n, len(unlabeled))
    audit = draw_audits(unlabeled, n, config.audit_share, rng)
    n_audit = len(audit)
    labeled[audit] = True  # audit picks are taken; the strategy chooses among the rest
    picker = _Picker(
        embeddings, labeled, labeled_idx, labels, strategy=strategy, probe=probe, state=state, config=config, rng=rng
    )
    main, source, greedy_parts = picker.pick(n - n_audit)
    is_audit = np.zeros(len(main) + n_audit, bool)
    is_audit[rng.choice(len(is_audit), n_audit, replace=False)] = True  # audits spread through the batch
    indices = np.empty(len(is_audit), np.int64)
    indices[is_audit], indices[~is_audit] = audit, main
    sources = np.empty(len(is_audit), dtype=object)
    sources[is_audit], sources[~is_audit] = "audit", source
    parts = picker.base_parts(indices)
    for name, values in greedy_parts.items():  # a pick-time value wins over the base one
        parts[name][~is_audit] = np.where(np.isnan(values), parts[name][~is_audit], values)
    return Selection(
        indices=indices,
        score_parts=parts,
        source=sources.astype(str),
        predicted=picker.predicted(indices),
        band=picker.band,
    )


def _validate(embeddings, labeled_idx, labels, n, strategy, probe, state):
    """All argument checks of :func:`select`, in one place."""
    if getattr(embeddings, "ndim", 0) != 2:
        raise ValueError("embeddings must be a 2-D array (N, D).")
    if strategy not in ALL_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(ALL_STRATEGIES)}.")
    labeled_idx = np.asarray(labeled_idx, dtype=np.int64).ravel()
    labels = np.asarray(labels)
    if len(labels) != len(labeled_idx):
        raise ValueError(f"got {len(labeled_idx)} labeled indices but {len(labels)} labels.")
    if len(labeled_idx) and (labeled_idx.min() < 0 or labeled_idx.max() >= len(embeddings)):
        raise ValueError(f"labeled_idx must be pool rows in [0, {len(embeddings)}).")
    if len(np.unique(labeled_idx)) != len(labeled_idx):
        raise ValueError("labeled_idx has repeats; give one row per item (multi-label: an indicator matrix).")
    multi_label = bool(getattr(probe, "multi_label", False))
    if labels.ndim != (2 if multi_label else 1):
        raise ValueError(
            f"labels must be {'(L, K) indicators for a multi-label' if multi_label else '1-D for a'} probe;"
            f" got shape {labels.shape}."
        )
    if probe is not None and not hasattr(probe, "classes_"):
        raise ValueError("probe is not fitted; pass None until it is.")
    if state is not None:
        if state.embeddings is not embeddings:
            raise ValueError("state was built on another embeddings array.")
        if state.labeled_.sum() != len(labeled_idx) or not state.labeled_[labeled_idx].all():
            raise ValueError(
                "state is out of date: its labeled items differ from labeled_idx; add_labels or refresh it."
            )
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}.")
    return labeled_idx, labels, int(n)


class _Picker:
    """The strategy's picks among items not yet taken, and every pick's score parts."""

    def __init__(self, embeddings, taken, labeled_idx, labels, *, strategy, probe, state, config, rng):
        self.embeddings, self.taken, self.strategy, self.probe = embeddings, taken, strategy, probe
        self.config, self.rng = config, rng
        self.n_labeled = len(labeled_idx)
        self.multi_label = labels.ndim == 2
        counts = labels.sum(axis=0) if self.multi_label else np.unique(labels, return_counts=True)[1]
        self.class_counts = counts[counts > 0]
        if state is None and strategy != "random":
            state = SimilarityState(embeddings).refresh(*_pairs(labeled_idx, labels, probe))
        self.state = state
        self.band = None

    # ----- probabilities -------------------------------------------------------------

    def proba(self, rows):
        """Probabilities of a few rows (the picks)."""
        if self.probe is None or len(rows) == 0:
            return None
        return self.probe.predict_proba(self.embeddings[rows])

    def uncertainty(self, method):
        """Uncertainty of every pool item, (N,), from the state's per-probe cache; None
        without an informative probe (every item then counts as uncertain)."""
        if not self._informative_probe():
            return None
        return self.state.predictions(self.probe).uncertainty(method)

    def predicted(self, rows):
        if self.probe is None or len(self.probe.classes_) == 0:
            return None
        return self.probe.predict(self.embeddings[rows])

    # ----- picking -------------------------------------------------------------------

    def pick(self, n):
        """Returns (rows, source per row, greedy score parts per row)."""
        free = np.flatnonzero(~self.taken)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, str), {}
        if self.strategy == "random" or (self.strategy in UNCERTAINTY and not self._informative_probe()):
            return self.rng.choice(free, n, replace=False), np.full(n, self.strategy), {}
        if self.strategy == "typicality" or self.n_labeled == 0:
            rows = typical_cluster_picks(
                self.embeddings,
                self.taken,
                n,
                density=self._density(),
                sample_size=self.config.kmeans_sample,
                seed=int(self.rng.integers(2**31)),
            )
            source = "typicality" if self.strategy == "typicality" and self.n_labeled else "cold_start"
            return rows, np.full(len(rows), source), {"typicality": self._density()[rows]}
        return self._greedy(free, n)

    def _informative_probe(self):
        return self.probe is not None and len(self.probe.classes_) >= (1 if self.multi_label else 2)

    def _density(self):
        c = self.config
        return self.state.typicality(k=c.typicality_k, reference_size=c.density_reference)

    def _slots(self, n):
        """The score each pick of the batch is chosen by."""
        if self.strategy != "default":
            return np.full(n, self.strategy)
        few = len(self.class_counts) < 2 or self.class_counts.min() < self.config.discovery_min_labels
        if not few:
            return np.full(n, "default")
        n_discovery = n if len(self.class_counts) < 2 else int(self.rng.binomial(n, self.config.discovery_share))
        return self.rng.permutation(np.r_[np.full(n_discovery, "discovery"), np.full(n - n_discovery, "default")])

    def _greedy(self, free, n):
        c = self.config
        slots = self._slots(n)
        similarity = self.state.nearest_similarity_[free].astype(np.float64)
        self.band = band_parameters(
            similarity,
            center_quantile=c.band_center_quantile,
            width_quantiles=c.band_width_quantiles,
            center=c.band_center,
            width=c.band_width,
        )
        uncertainty = self.uncertainty(self.strategy if self.strategy in UNCERTAINTY else c.uncertainty)
        uncertainty = None if uncertainty is None else uncertainty[free]
        power = c.typicality_power if self.n_labeled < c.typicality_labels_per_class * len(self.class_counts) else 0.0
        density = self._density()[free] if "discovery" in slots or power else None
        ceiling = 1.0
        if power:
            # Typicality counts up to that of the most typical item that is not a near-copy
            # of a labeled one (nearest-labeled similarity above the band): a dense clump
            # of near-copies is not asked about for being dense.
            not_copies = similarity <= self.band[0] + self.band[1]
            ceiling = float((density[not_copies] if not_copies.any() else density).max())

        def scores(kind, similarity_now, rows=None):  # rows=None: every free item, without a copy
            pick = (lambda a: a) if rows is None else (lambda a: a[rows])
            return get_scores(
                kind,
                uncertainty_values=None if uncertainty is None else pick(uncertainty),
                multi_label=self.multi_label,
                uncertainty=c.uncertainty,
                similarity=similarity_now,
                band_center=self.band[0],
                band_width=self.band[1],
                density=None if density is None else pick(density),
                typicality_power=power,
                typicality_ceiling=ceiling,
                rng=self.rng,
            )

        # Candidates: the best `shortlist` items of each score in use.
        shortlist = np.unique(
            np.concatenate([_top(scores(kind, similarity)[0], max(c.shortlist, n)) for kind in np.unique(slots)])
        )
        cand_sim = similarity[shortlist].copy()
        cand_emb = np.asarray(self.embeddings[free[shortlist]], dtype=np.float32)
        available = np.ones(len(shortlist), bool)
        picks, parts = [], {}
        for i, kind in enumerate(slots):
            score, factors = scores(kind, cand_sim, shortlist)
            score_now = np.where(available, score, -np.inf)
            # Ties (e.g. saturated probabilities) are broken at random, not by pool order.
            best = int(self.rng.choice(np.flatnonzero(score_now == score_now.max())))
            picks.append(best)
            record = dict(factors, score=score, nearest_similarity=cand_sim)
            for name, values in record.items():
                parts.setdefault(name, np.full(n, np.nan))[i] = values[best]
            available[best] = False
            # The pick now counts as labeled for the rest of the batch.
            np.maximum(cand_sim, cand_emb @ cand_emb[best], out=cand_sim)
        return free[shortlist[picks]], slots, parts

    # ----- parts every pick gets -----------------------------------------------------

    def base_parts(self, rows):
        """Score parts that do not depend on how the item was picked; NaN elsewhere."""
        parts = {name: np.full(len(rows), np.nan) for name in PART_NAMES}
        if self.state is not None and self.n_labeled:
            parts["nearest_similarity"] = self.state.nearest_similarity_[rows].astype(np.float64)
        proba = self.proba(rows)
        if proba is not None and self._informative_probe():
            method = self.strategy if self.strategy in UNCERTAINTY else self.config.uncertainty
            parts["uncertainty"] = get_scores(method, proba=proba, multi_label=self.multi_label)[1]["uncertainty"]
            if self.state is not None and not self.multi_label:
                similarity = self.state.similarity_to_class(self.probe.classes_[proba.argmax(axis=1)], rows)
                parts["class_similarity"] = np.where(np.isfinite(similarity), similarity, np.nan)
        return parts


def _top(score, k):
    """Positions of the ``k`` largest scores, in no particular order."""
    return np.arange(len(score)) if k >= len(score) else np.argpartition(-score, k - 1)[:k]


def _pairs(labeled_idx, labels, probe):
    """(rows, classes) pairs for a similarity state: one per label, several per multi-label item."""
    if labels.ndim == 1:
        return labeled_idx, labels
    item, column = np.nonzero(labels)
    return labeled_idx[item], probe.classes_[column]
