"""Label many images at once: those the probe puts in one class, or near-copies of a labeled image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.engine.project_engine import ProjectEngine
from services.errors import UserError
from services.labeling.write import LabelWrite, write_labels

GRID_SIZE = 36
NEAR_COPY_SIMILARITY = 0.9  # cosine; above this an image is taken for a near-copy


@dataclass(frozen=True)
class Candidate:
    item_id: int
    path: str
    score: float  # the probe's probability, or the similarity to the source image


def predicted_members(engine: ProjectEngine, class_id: int, n: int = GRID_SIZE) -> list[Candidate]:
    """Up to ``n`` unlabeled images the serving probe puts in ``class_id``, most confident first."""
    labeled = set(engine.labeled_items())
    rows = np.asarray([row for row, item in enumerate(engine.pool.item_ids.tolist()) if item not in labeled], np.int64)
    predicted = engine.predictions(rows) if len(rows) else None
    if predicted is None:
        return []
    classes, probability = predicted
    members = np.flatnonzero(classes == class_id)
    best = members[np.argsort(-probability[members])][:n]
    return [
        Candidate(int(engine.pool.item_ids[rows[i]]), engine.pool.paths[rows[i]], float(probability[i])) for i in best
    ]


def near_copies(
    engine: ProjectEngine, item_id: int, n: int = GRID_SIZE, min_similarity: float = NEAR_COPY_SIMILARITY
) -> list[Candidate]:
    """Up to ``n`` unlabeled images at least ``min_similarity`` similar to ``item_id``, closest first."""
    return [
        Candidate(item, engine.pool.paths[engine.pool.row_of[item]], similarity)
        for item, similarity in engine.similar_unlabeled(item_id, n)
        if similarity >= min_similarity
    ]


def accept(engine: ProjectEngine, *, item_ids: Sequence[int], class_id: int, annotator: str) -> list[int]:
    """Label every one of ``item_ids`` as ``class_id`` in one transaction; return the annotation ids.

    In a multi-label project the class is added to each image's classes.
    """
    if class_id not in engine.classes or engine.classes[class_id].archived:
        raise UserError("choose an existing, unarchived class")
    labels = []
    for item_id in item_ids:
        current = engine.current_label(item_id)
        classes = {class_id} | (set(current.class_ids) if engine.multi_label and current is not None else set())
        labels.append(
            LabelWrite(item_id, tuple(sorted(classes)), current.annotation_id if current is not None else None)
        )
    return write_labels(engine.db, project_id=engine.project_id, labels=labels, annotator=annotator)
