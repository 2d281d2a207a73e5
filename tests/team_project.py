"""A project for team tests on any backend: sample images ingested into the given database,
with synthetic class-clustered embeddings instead of the backbone's (fast, and the same
on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from services.config import Settings
from services.database import Database
from services.engine.pool import Pool
from services.engine.project_engine import ProjectEngine
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project
from storage.items import item_queries
from storage.labels import priority_queries
from storage.labels.priority_queries import TRIAGE
from storage.models import Item, ItemStatus
from storage.teams import lease_queries
from tests.labeling_project import SAMPLE_IMAGES, true_class

EMBEDDING_DIM = 16


def team_engine(
    db: Database,
    settings: Settings,
    base: Path,
    *,
    classes=("airplane", "cat", "frog", "truck"),
    per_class: int = 10,
    seed: int = 0,
) -> ProjectEngine:
    """Ingest ``per_class`` sample images of each class into project "default" of ``db``, add the
    classes, and start a ProjectEngine over embeddings clustered by true class."""
    for name in classes:
        (base / "images" / name).mkdir(parents=True)
        for source in sorted((SAMPLE_IMAGES / name).iterdir())[:per_class]:
            shutil.copy(source, base / "images" / name / source.name)
    # In this process: a few hundred small files check faster than worker processes start.
    ingest(db, replace(settings, ingest_workers=1), source=base / "images", project="default")
    project = get_project(db, "default")
    for name in classes:
        add_label_class(db, project=project, name=name)
    with db.reading() as session:
        paths = dict(item_queries.ok_item_paths(session, project.id))
    ids = np.asarray(sorted(paths), np.int64)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(classes), EMBEDDING_DIM))
    which = [classes.index(true_class(paths[i])) for i in ids.tolist()]
    vectors = (centres[which] + 0.8 * rng.normal(size=(len(ids), EMBEDDING_DIM))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pool = Pool.of(
        backbone_key="synthetic",
        item_ids=ids,
        paths=[paths[i] for i in ids.tolist()],
        embeddings=vectors,
        root=Path(project.root_path),
    )
    return ProjectEngine(db, settings, project=project, pool=pool)


def class_ids_by_name(engine: ProjectEngine) -> dict[str, int]:
    return {c.name: c.id for c in engine.classes.values()}


def item_ids_by_path(session, project_id: int, paths) -> dict[str, int]:
    """Each of ``paths`` that is an ingested image of the project, with its id."""
    query = select(Item.path, Item.id).where(
        Item.project_id == project_id, Item.status == ItemStatus.OK, Item.path.in_(list(paths))
    )
    return dict(session.execute(query).all())


def overlap_wanted(item_id: int, share: float) -> bool:
    """The overlap rule, written out: the test's oracle for storage.teams.lease_queries."""
    return (
        item_id * lease_queries.OVERLAP_HASH_MULTIPLIER
    ) % lease_queries.OVERLAP_HASH_RANGE < lease_queries.overlap_threshold(share)


def pending_items(db: Database, project_id: int, *, source: str = TRIAGE) -> list[int]:
    """The queued, still unlabeled item ids of the project, in the order they will be asked."""
    with db.reading() as session:
        return [pick.item_id for pick in priority_queries.pending(session, project_id, source=source)]
