"""2D maps of a project's embeddings (PCA, instant; t-SNE, in the background) and
"more like this" search."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from core.similarity.maps import TsneConfig, map_sample, pca_reduce, tsne_2d
from services.engine.project_engine import ProjectEngine

log = logging.getLogger(__name__)

MAP_POINTS = 20_000  # points drawn at most; a random sample beyond that
PCA_SAMPLE = 20_000  # rows the projection is fitted on
TSNE_CONFIG = TsneConfig()  # the Explore page's t-SNE maps


@dataclass(frozen=True)
class MapPoints:
    """Points to draw: pool rows, their 2D coordinates, and a colour group per point."""

    rows: np.ndarray
    xy: np.ndarray
    group: list[str]


def pca_2d(embeddings: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """First two principal components of every row, fitted on a sample of at most PCA_SAMPLE rows."""
    return pca_reduce(embeddings, 2, fit_size=PCA_SAMPLE, seed=seed)


def map_points(
    engine: ProjectEngine, xy: np.ndarray, *, colour_by: str, rows: np.ndarray | None = None, seed: int = 0
) -> MapPoints:
    """The points to draw, coloured by ``label`` (unlabeled grey) or ``prediction`` of the serving model.

    ``xy`` holds every pool row's coordinates (at most MAP_POINTS of them are drawn), or, with
    ``rows``, the coordinates of just those pool rows (all drawn).
    """
    if rows is not None:
        rows = np.asarray(rows, np.int64)
        if len(rows) != len(xy):
            raise ValueError(f"{len(rows)} rows but {len(xy)} coordinates")
        return _coloured(engine, rows, np.asarray(xy), colour_by)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(xy)) if len(xy) <= MAP_POINTS else np.sort(rng.choice(len(xy), MAP_POINTS, replace=False))
    return _coloured(engine, rows, xy[rows], colour_by)


def _coloured(engine: ProjectEngine, rows: np.ndarray, xy: np.ndarray, colour_by: str) -> MapPoints:
    names = {c.id: c.name for c in engine.classes.values()}
    if colour_by == "prediction" and (predicted := engine.predictions(rows)) is not None:
        group = [names.get(int(c), "?") for c in predicted[0]]
    else:
        labels = {item: engine.current_label(item) for item in engine.labeled_items()}
        group = []
        for row in rows.tolist():
            label = labels.get(int(engine.pool.item_ids[row]))
            group.append(", ".join(names[c] for c in label.class_ids) if label is not None else "unlabeled")
    return MapPoints(rows=rows, xy=xy, group=group)


@dataclass
class MapJob:
    """A t-SNE map computed in a background thread (:func:`start_tsne_map`).

    ``rows`` are the pool rows the map covers, of ``total`` in the pool, and ``labeled`` of
    them were labeled when it started. ``phase`` is ``running``, ``ready`` (``xy`` holds
    one (x, y) per row, shape (len(rows), 2)) or ``failed`` (``error`` says why).
    ``retry`` is set by whoever wants a failed map started again; ``started`` is the
    time.monotonic() of the start.
    """

    rows: np.ndarray
    total: int
    labeled: int
    started: float = 0.0
    phase: str = "running"
    xy: np.ndarray | None = None
    error: str | None = None
    retry: bool = False


def labeled_mask(engine: ProjectEngine) -> np.ndarray:
    """Whether each pool row is labeled, shape (N,), bool."""
    labeled = np.zeros(len(engine.pool.item_ids), bool)
    rows = [engine.pool.row_of[item] for item in engine.labeled_items() if item in engine.pool.row_of]
    labeled[rows] = True
    return labeled


def start_tsne_map(embeddings: np.ndarray, labeled: np.ndarray, config: TsneConfig = TSNE_CONFIG) -> MapJob:
    """Start a t-SNE map of a sample of ``embeddings`` (every labeled row first) in a background thread.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
    labeled : ndarray of shape (N,), bool
    config : TsneConfig

    Returns
    -------
    MapJob
        Running; it turns ``ready`` or ``failed`` by itself.
    """
    rows = map_sample(labeled, config.max_points, seed=config.seed)
    job = MapJob(
        rows=rows, total=len(embeddings), labeled=int(np.asarray(labeled, bool)[rows].sum()), started=time.monotonic()
    )
    threading.Thread(target=_run_tsne, args=(job, embeddings, config), name="tsne-map", daemon=True).start()
    return job


def _run_tsne(job: MapJob, embeddings: np.ndarray, config: TsneConfig) -> None:
    try:
        job.xy = tsne_2d(np.asarray(embeddings[job.rows], np.float32), config)
        job.phase = "ready"
    except Exception as error:  # shown on the page; the traceback goes to the server log
        log.exception("t-SNE map failed")
        job.error, job.phase = f"{type(error).__name__}: {error}", "failed"


def more_like(engine: ProjectEngine, item_id: int, n: int = 12) -> list[tuple[int, float]]:
    """The ``n`` images most similar to ``item_id``, labeled or not: (item id, cosine similarity)."""
    similarity = engine.pool.embeddings @ engine.pool.embeddings[engine.pool.row_of[item_id]]
    similarity[engine.pool.row_of[item_id]] = -np.inf
    best = np.argsort(-similarity)[:n]
    return [(int(engine.pool.item_ids[row]), float(similarity[row])) for row in best]
