"""Eight annotators label one project at once through labeling sessions while the model
retrains, on SQLite and PostgreSQL: no item is labeled by two of them except overlap items,
every acknowledged label is stored, and no error reaches an annotator. Prints the label
write latency (the label call: the annotation and its lease committed)."""

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from sqlalchemy import select

from services.labeling.session import LabelingSession
from services.teams.leases import TeamSettings
from storage.models import Annotation, AnnotationSource, Annotator
from tests.labeling_project import true_class
from tests.team_project import class_ids_by_name, overlap_wanted, team_engine

pytestmark = pytest.mark.slow

ANNOTATORS = 8
RUN_SECONDS = 12.0
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = 100  # more images than eight annotators label in RUN_SECONDS here
TEAM = TeamSettings(overlap_share=0.05)
MISTAKE_RATE = 0.1  # the simulated oracle is sometimes wrong, so overlap labels disagree now and then
SKIP_RATE = 0.05


@dataclass
class Annotator_:
    name: str
    acknowledged: dict[int, tuple[int, str]] = field(default_factory=dict)  # annotation id -> (item id, class)
    latencies_s: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def _label_until(deadline, session: LabelingSession, who: Annotator_, start: threading.Barrier, seed: int) -> None:
    rng = random.Random(seed)
    try:
        start.wait()
        while time.monotonic() < deadline:
            ask = session.current()
            if ask is None:
                return
            if rng.random() < SKIP_RATE:
                session.skip(ask.item_id)
                continue
            name = true_class(ask.path) if rng.random() >= MISTAKE_RATE else rng.choice(CLASSES)
            began = time.perf_counter()
            annotation_id = session.label(ask.item_id, [class_ids_by_name(session.engine)[name]])
            who.latencies_s.append(time.perf_counter() - began)
            who.acknowledged[annotation_id] = (ask.item_id, name)
    except BaseException as error:  # everything an annotator would see
        who.errors.append(error)
    finally:
        session.close()


def test_eight_annotators_label_at_once_without_sharing_items_or_losing_labels(backend_db, backend_settings, tmp_path):
    engine = team_engine(backend_db, backend_settings, tmp_path, classes=CLASSES, per_class=PER_CLASS)
    try:
        annotators = [Annotator_(f"annotator-{i}") for i in range(ANNOTATORS)]
        sessions = [LabelingSession(engine, who.name, team=TEAM) for who in annotators]
        start = threading.Barrier(ANNOTATORS)
        began = time.monotonic()
        deadline = began + RUN_SECONDS
        threads = [
            threading.Thread(target=_label_until, args=(deadline, session, who, start, i))
            for i, (session, who) in enumerate(zip(sessions, annotators))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RUN_SECONDS + 60)
        elapsed = time.monotonic() - began
        assert not any(thread.is_alive() for thread in threads)
        assert [who.errors for who in annotators] == [[]] * ANNOTATORS
        assert all(who.acknowledged for who in annotators), "every annotator labeled something"

        with engine.db.reading() as session:
            rows = session.execute(
                select(Annotation, Annotator.name).join(Annotator).where(Annotation.source == AnnotationSource.HUMAN)
            ).all()
            stored = {row.id: (row.item_id, [c.name for c in row.classes], name) for row, name in rows}
        for who in annotators:
            for annotation_id, (item_id, name) in who.acknowledged.items():
                assert stored[annotation_id] == (item_id, [name], who.name)
        by_item = defaultdict(set)
        for item_id, _, name in stored.values():
            by_item[item_id].add(name)
        shared = {item for item, names in by_item.items() if len(names) > 1}
        assert all(len(by_item[item]) == 2 and overlap_wanted(item, TEAM.overlap_share) for item in shared)
        assert engine.serving.model_version_id is not None, "the model retrained while they labeled"

        latencies_ms = 1000 * np.asarray([s for who in annotators for s in who.latencies_s])
        backend = engine.db.engine.dialect.name
        print(
            f"\n{backend}: {len(latencies_ms)} labels of {len(engine.pool.item_ids)} images by {ANNOTATORS} annotators "
            f"in {elapsed:.1f} s "
            f"({len(shared)} overlap items labeled twice); label write latency p50 "
            f"{np.percentile(latencies_ms, 50):.1f} ms, p99 {np.percentile(latencies_ms, 99):.1f} ms, "
            f"max {latencies_ms.max():.1f} ms"
        )
    finally:
        engine.close()
