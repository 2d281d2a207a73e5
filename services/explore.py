"""A 2D map of a project's embeddings (PCA) and "more like this" search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.engine import ProjectEngine

MAP_POINTS = 20_000  # points drawn at most; a random sample beyond that
PCA_SAMPLE = 20_000  # rows the projection is fitted on


@dataclass(frozen=True)
class MapPoints:
    """Points to draw: pool rows, their 2D coordinates, and a colour group per point."""

    rows: np.ndarray
    xy: np.ndarray
    group: list[str]


def pca_2d(embeddings: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """First two principal components of every row, fitted on a sample of at most PCA_SAMPLE rows."""
    rng = np.random.default_rng(seed)
    sample = embeddings[np.sort(rng.choice(len(embeddings), min(len(embeddings), PCA_SAMPLE), replace=False))]
    mean = sample.mean(axis=0)
    _, _, components = np.linalg.svd(sample - mean, full_matrices=False)
    return ((embeddings - mean) @ components[:2].T).astype(np.float32)


def map_points(engine: ProjectEngine, xy: np.ndarray, *, colour_by: str, seed: int = 0) -> MapPoints:
    """The points to draw, coloured by ``label`` (unlabeled grey) or ``prediction`` of the serving model."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(xy)) if len(xy) <= MAP_POINTS else np.sort(rng.choice(len(xy), MAP_POINTS, replace=False))
    names = {c.id: c.name for c in engine.classes.values()}
    if colour_by == "prediction" and (predicted := engine.predictions(rows)) is not None:
        group = [names.get(int(c), "?") for c in predicted[0]]
    else:
        labels = {item: engine.current_label(item) for item in engine.labeled_items()}
        group = []
        for row in rows.tolist():
            label = labels.get(int(engine.item_ids[row]))
            group.append(", ".join(names[c] for c in label.class_ids) if label is not None else "unlabeled")
    return MapPoints(rows=rows, xy=xy[rows], group=group)


def more_like(engine: ProjectEngine, item_id: int, n: int = 12) -> list[tuple[int, float]]:
    """The ``n`` images most similar to ``item_id``, labeled or not: (item id, cosine similarity)."""
    similarity = engine.embeddings @ engine.embeddings[engine.row_of[item_id]]
    similarity[engine.row_of[item_id]] = -np.inf
    best = np.argsort(-similarity)[:n]
    return [(int(engine.item_ids[row]), float(similarity[row])) for row in best]
