"""Tell the user when the features, not the labels, are the problem.

Two causes are recognised. A *mismatch*: the engine's features come from the bundled backbone,
trained on 32x32 images, while the project's images are photos; known weak before any label.
A *measured* weakness: the labeled images' features do not separate their classes
(:func:`core.features.feature_strength.feature_strength`, near chance). Either way the text names what
to do: switch backbone, fetch a self-supervised one, or train one on the project's images.
"""

from __future__ import annotations

import functools
import statistics
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from core.features.backbones import FETCH_COMMAND, PUBLISHED, identify_backbone
from core.features.feature_strength import FeatureStrength, feature_strength
from services.engine.project_engine import ProjectEngine
from services.features.project_backbone import PHOTO_BACKBONE, SSL_PREFERENCE, TINY_IMAGE_SIDE
from storage.items import item_queries

# Labeled images the measure looks at, at most: it costs an (n, n) similarity product.
MEASURED_LABELS = 2000


@dataclass(frozen=True)
class FeatureWarning:
    """Why the features are weak (``cause`` is ``mismatch`` or ``measured``) and what to do, as plain text."""

    cause: str
    text: str
    strength: FeatureStrength | None = None


# Per engine: the labels it was computed for (count, newest annotation id) and the warning.
_cache: weakref.WeakKeyDictionary[ProjectEngine, tuple[tuple[int, int], FeatureWarning | None]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def feature_warning(engine: ProjectEngine) -> FeatureWarning | None:
    """The warning for the engine's features and labels, or None when nothing suggests they are weak.
    Cached per engine until its labels change, so pages may call it on every run."""
    labeled = engine.labeled_items()
    newest = max(
        (label.annotation_id for item in labeled if (label := engine.current_label(item)) is not None), default=0
    )
    key = (len(labeled), newest)
    with _cache_lock:
        cached = _cache.get(engine)
    if cached is not None and cached[0] == key:
        return cached[1]
    warning = _mismatch(engine) or _measured(engine, labeled)
    with _cache_lock:
        _cache[engine] = (key, warning)
    return warning


def remedies() -> str:
    ssl = SSL_PREFERENCE[0]
    return (
        f"Switch the backbone on the Classes and settings page ({PHOTO_BACKBONE} works offline), fetch a "
        f"self-supervised one ({FETCH_COMMAND} {ssl}, {PUBLISHED[ssl].size_mb} MB, then switch to it), or "
        "train one on these images (python -m app.cli ssl-train). Every label is kept."
    )


def _mismatch(engine: ProjectEngine) -> FeatureWarning | None:
    if engine.pool.backbone_key != _bundled_key():
        return None
    with engine.db.reading() as session:
        sides = item_queries.image_shorter_sides(session, engine.project_id)
    if not sides or statistics.median(sides) <= TINY_IMAGE_SIDE:
        return None
    return FeatureWarning(
        "mismatch",
        (
            f"The image features are weak for these images: the bundled backbone was trained on 32x32 images, and "
            f"these are photos (median shorter side {statistics.median(sides):.0f} px), so the suggestions, the "
            f"order of asks, triage and label issues will be poor. {remedies()}"
        ),
    )


def _measured(engine: ProjectEngine, labeled: list[int]) -> FeatureWarning | None:
    if engine.multi_label:
        return None  # the measure is for one class per image
    labels = {item: label for item in labeled if (label := engine.current_label(item)) is not None}
    items = [item for item, label in labels.items() if label.class_ids and item in engine.pool.row_of]
    if len(items) > MEASURED_LABELS:
        items = np.random.default_rng(0).choice(items, MEASURED_LABELS, replace=False).tolist()
    rows = [engine.pool.row_of[item] for item in items]
    strength = feature_strength(
        engine.pool.embeddings[rows], np.array([labels[i].class_ids[0] for i in items], np.int64)
    )
    if not strength.weak:
        return None
    return FeatureWarning(
        "measured",
        (
            f"The image features look weak for the labels given: for each of {strength.n_labels} labeled images, its "
            f"most similar labeled images name its class {strength.accuracy:.0%} of the time (class-balanced; "
            f"chance is {strength.chance:.0%}). If the labels are right, better features are the fix. {remedies()}"
        ),
        strength,
    )


@functools.lru_cache(maxsize=1)
def _bundled_key() -> str:
    return identify_backbone("bundled").key
