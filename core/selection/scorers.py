"""Per-item scores for choosing what to ask next: small functions over numpy arrays,
combined by :func:`get_scores`. Every score is in [0, 1] and higher means "ask sooner".
"""

from __future__ import annotations

import faiss
import numpy as np
from scipy.special import xlogy

STRATEGIES = ("default", "margin", "entropy", "least_confidence", "band_only", "discovery", "random")


# ----- uncertainty -------------------------------------------------------------------


def margin(proba):
    """1 - (top probability - runner-up). Shape (M, K) -> (M,); 0 when K < 2."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba):
    """Entropy divided by log K, so 1 means uniform. Shape (M, K) -> (M,)."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    return -xlogy(proba, proba).sum(axis=1) / np.log(proba.shape[1])


def least_confidence(proba):
    """(1 - top probability) scaled by K / (K - 1), so 1 means uniform. Shape (M, K) -> (M,)."""
    k = proba.shape[1]
    if k < 2:
        return np.zeros(len(proba))
    return (1.0 - proba.max(axis=1)) * k / (k - 1)


UNCERTAINTY = {"margin": margin, "entropy": entropy, "least_confidence": least_confidence}


def multilabel_uncertainty(proba, method):
    """Uncertainty of the least certain yes/no decision among independent per-class
    probabilities. Shape (M, K) -> (M,)."""
    if proba.shape[1] == 0:
        return np.zeros(len(proba))
    binary = np.stack([proba, 1.0 - proba], axis=2).reshape(-1, 2)
    return UNCERTAINTY[method](binary).reshape(proba.shape).max(axis=1)


# ----- similarity to what is labeled -------------------------------------------------


def band_parameters(similarity, *, center_quantile=0.5, width_quantiles=(0.25, 0.75), center=None, width=None):
    """Centre and width of the mid-range band from the pool's similarity distribution.

    The centre is the ``center_quantile`` of ``similarity`` (the unlabeled items'
    similarity to their nearest labeled item) and the width half the spread between
    the ``width_quantiles``: as labels accumulate the whole distribution moves up and
    the band follows it. ``center`` or ``width`` (cosine units) override either.

    Returns
    -------
    (float, float)
    """
    finite = similarity[np.isfinite(similarity)]
    if len(finite) == 0:
        return (0.0 if center is None else center), (1.0 if width is None else width)
    if center is None:
        center = float(np.quantile(finite, center_quantile))
    if width is None:
        low, high = np.quantile(finite, width_quantiles)
        width = float(high - low) / 2
    return center, max(width, 1e-3)  # a degenerate pool (all equally similar) must not divide by 0


def band(similarity, *, center, width):
    """Soft preference for a middle distance from the labeled items: a Gaussian bump in
    the similarity, 1 at ``center``. Near-copies of labeled items (similarity far above
    the centre) and items unlike anything labeled (far below) both score low."""
    return np.exp(-0.5 * ((similarity - center) / width) ** 2)


def novelty(similarity):
    """(1 - similarity) / 2: 1 for the opposite of every labeled item, 0 for a copy."""
    return (1.0 - np.clip(similarity, -1.0, 1.0)) / 2


# ----- density ------------------------------------------------------------------------


def typicality(embeddings, *, k=20, reference=None, reference_index=None):
    """Mean cosine similarity to the ``k`` most similar reference items (self excluded).

    Parameters
    ----------
    embeddings : ndarray of shape (M, D), L2-normalised
    k : int
    reference : ndarray of shape (R, D) or None
        Items that define the density; the embeddings themselves when None.
        A random sample of a large pool gives the same ranking at a fraction of the cost.
    reference_index : ndarray of shape (R,) or None
        Rows of ``embeddings`` that the reference items are, so an item is never its
        own neighbour; ``arange(M)`` when ``reference`` is None.

    Returns
    -------
    ndarray of shape (M,), in [-1, 1]
    """
    queries = np.ascontiguousarray(embeddings, dtype=np.float32)
    if reference is None:
        reference, reference_index = queries, np.arange(len(queries))
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    k = min(k, len(reference) - 1)
    if k < 1:
        return np.zeros(len(queries))
    index = faiss.IndexFlatIP(reference.shape[1])
    index.add(reference)
    sims, ids = index.search(queries, k + 1)
    own = np.full(len(reference), -1) if reference_index is None else np.asarray(reference_index)
    is_self = (ids >= 0) & (own[ids.clip(0)] == np.arange(len(queries))[:, None])
    # Drop the item itself where it came back, otherwise the (k+1)-th neighbour.
    dropped = np.where(is_self.any(axis=1), (sims * is_self).sum(axis=1), sims[:, -1])
    return (sims.sum(axis=1, dtype=np.float64) - dropped) / k


def typical_preference(density, power, ceiling):
    """(typicality / ``ceiling``, clipped to [0, 1]) raised to ``power``: 1 for items at
    least as typical as ``ceiling``, falling towards outliers. Above the ceiling all items
    are equal, so a clump of near-copies is not preferred for being dense. Typicality
    spans a narrow range (about 0.7 to 0.9 on image embeddings), so a power well above
    1 is what makes it count next to uncertainty."""
    return np.clip(density / max(ceiling, 1e-6), 0.0, 1.0) ** power


# ----- the entry point ----------------------------------------------------------------


def get_scores(
    strategy,
    *,
    proba=None,
    multi_label=False,
    uncertainty="margin",
    similarity=None,
    band_center=None,
    band_width=None,
    density=None,
    typicality_power=0.0,
    typicality_ceiling=1.0,
    rng=None,
    uncertainty_values=None,
):
    """Score candidate items for one strategy.

    Strategies
    ----------
    ``"default"``
        uncertainty x band: unsure items at a middle distance from the labeled ones;
        x :func:`typical_preference` when ``typicality_power`` is not 0.
    ``"margin"``, ``"entropy"``, ``"least_confidence"``
        that uncertainty alone.
    ``"band_only"``
        the band alone.
    ``"discovery"``
        novelty x typicality: dense regions far from every label, where unseen
        classes are most likely.
    ``"random"``
        uniform.

    Parameters
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    proba : ndarray of shape (M, K) or None
        The probe's probabilities; None, or fewer than two classes, makes uncertainty
        uninformative and it is taken as 1.
    multi_label : bool
        ``proba`` holds independent per-class probabilities.
    uncertainty : {"margin", "entropy", "least_confidence"}
        The uncertainty used by ``"default"``.
    similarity : ndarray of shape (M,)
        Cosine similarity to the nearest labeled item (needed by band and novelty).
    band_center, band_width : float
        From :func:`band_parameters`.
    density : ndarray of shape (M,)
        :func:`typicality` (needed by ``"discovery"``, and by ``"default"`` with a
        ``typicality_power``).
    typicality_power, typicality_ceiling : float
        Of the typicality factor of ``"default"`` (:func:`typical_preference`); a power
        of 0 leaves it out.
    rng : numpy.random.Generator
        For ``"random"``.
    uncertainty_values : ndarray of shape (M,) or None
        The uncertainty, already computed (see :mod:`core.model.pool_predictions`); used
        instead of ``proba``.

    Returns
    -------
    score : ndarray of shape (M,)
    parts : dict of str -> ndarray of shape (M,)
        The factors the score was made of.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    method = strategy if strategy in UNCERTAINTY else uncertainty
    if method not in UNCERTAINTY:
        raise ValueError(f"unknown uncertainty {method!r}; choose one of {', '.join(UNCERTAINTY)}.")
    needs = {
        "default": ("similarity", "density") if typicality_power else ("similarity",),
        "band_only": ("similarity",),
        "discovery": ("similarity", "density"),
        "random": ("rng",),
    }.get(strategy, ())
    given = dict(similarity=similarity, density=density, rng=rng)
    missing = [name for name in needs if given[name] is None]
    if missing:
        raise ValueError(f"strategy {strategy!r} needs {', '.join(missing)}.")
    lengths = {len(a) for a in (proba, similarity, density, uncertainty_values) if a is not None}
    if len(lengths) != 1:
        raise ValueError(
            "proba (or uncertainty_values), similarity and density must be given for the same items; "
            f"got lengths {lengths}."
        )
    n_items = lengths.pop()

    parts = {}
    if strategy in ("default", *UNCERTAINTY):
        if uncertainty_values is not None:
            parts["uncertainty"] = np.asarray(uncertainty_values, float)
        elif proba is None or proba.shape[1] < (1 if multi_label else 2):
            parts["uncertainty"] = np.ones(n_items)
        else:
            parts["uncertainty"] = multilabel_uncertainty(proba, method) if multi_label else UNCERTAINTY[method](proba)
    if strategy in ("default", "band_only"):
        parts["band"] = band(similarity, center=band_center, width=band_width)
    if strategy == "default" and typicality_power:
        parts["typicality"] = typical_preference(density, typicality_power, typicality_ceiling)
    if strategy == "discovery":
        parts["novelty"] = novelty(similarity)
        parts["typicality"] = np.clip(density, 0.0, 1.0)
    if strategy == "random":
        parts["random"] = rng.random(n_items)
    score = np.prod(np.stack(list(parts.values())), axis=0)
    return score, parts
