"""Many labelers writing at once, on SQLite and PostgreSQL: no error reaches them, no label is lost.

Eight threads record annotations through the service layer for a few seconds. Half share
the test's Database (as the app's sessions share one), half share a second Database on the
same URL (as a second process would). Each pair of threads labels as the same annotator,
and every annotator is new when the run starts.
"""

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from sqlalchemy import select

from services.database import open_database
from services.errors import UserError
from services.labeling.classes import add_label_class
from services.projects import ensure_project
from storage import queries
from storage.models import Annotation, ItemStatus
from tests.labels_by_name import record_annotation
from tests.lock_waits import in_a_thread, wait_until_a_writer_waits

THREADS = 8
ITEMS_PER_THREAD = 5
RUN_SECONDS = 5.0
CLASSES = ("cat", "dog", "bird")


@dataclass
class Labeler:
    """What one thread was told was committed, and anything that went wrong."""

    acknowledged: dict[int, tuple[int, str]] = field(default_factory=dict)  # annotation id -> (item id, class)
    latencies_s: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def _items(db, tmp_path) -> list[int]:
    project = ensure_project(db, name="p", root=None, root_if_new=tmp_path)
    for name in CLASSES:
        add_label_class(db, project=project, name=name)
    rows = [
        {
            "project_id": project.id,
            "path": f"{n}.png",
            "sha256": f"{n:064x}",
            "size_bytes": 1,
            "mtime_ns": 1,
            "status": ItemStatus.OK,
        }
        for n in range(THREADS * ITEMS_PER_THREAD)
    ]
    with db.writing() as session:
        return [item_id for item_id, _ in queries.insert_items(session, rows)]


def _label_until(
    deadline: float, db, item_ids: list[int], annotator: str, start: threading.Barrier, labeler: Labeler
) -> None:
    try:
        start.wait()
        newest: dict[int, int] = {}  # item id -> this thread's last annotation of it, which the next supersedes
        n = 0
        while time.monotonic() < deadline:
            item_id, label = item_ids[n % len(item_ids)], CLASSES[n % len(CLASSES)]
            began = time.perf_counter()
            annotation_id = record_annotation(
                db,
                item_id=item_id,
                class_names=[label],
                annotator=annotator,
                duration_ms=n,
                supersedes_id=newest.get(item_id),
            )
            labeler.latencies_s.append(time.perf_counter() - began)
            labeler.acknowledged[annotation_id] = (item_id, label)
            newest[item_id] = annotation_id
            n += 1
    except BaseException as error:  # noqa: BLE001 - the test asserts that nothing ever lands here
        labeler.errors.append(error)


@pytest.mark.slow
def test_concurrent_labelers_lose_nothing_and_never_see_an_error(backend_db, backend_settings, tmp_path):
    item_ids = _items(backend_db, tmp_path)
    with open_database(backend_settings) as second_process:
        databases = [backend_db, second_process]
        labelers = [Labeler() for _ in range(THREADS)]
        start = threading.Barrier(THREADS)
        deadline = time.monotonic() + RUN_SECONDS
        threads = [
            threading.Thread(
                target=_label_until,
                args=(
                    deadline,
                    databases[n % 2],
                    item_ids[n * ITEMS_PER_THREAD : (n + 1) * ITEMS_PER_THREAD],
                    f"labeler{n // 2}",
                    start,
                    labelers[n],
                ),
            )
            for n in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=RUN_SECONDS + 60)
        assert not any(thread.is_alive() for thread in threads)

    assert [error for labeler in labelers for error in labeler.errors] == []
    acknowledged = {key: value for labeler in labelers for key, value in labeler.acknowledged.items()}
    assert all(labeler.acknowledged for labeler in labelers)  # every thread got writes through
    with backend_db.reading() as session:
        stored = {a.id: (a.item_id, [c.name for c in a.classes]) for a in session.scalars(select(Annotation))}
    assert {key: (item_id, [label]) for key, (item_id, label) in acknowledged.items()} == stored

    latencies_ms = 1000 * np.array([s for labeler in labelers for s in labeler.latencies_s])
    print(
        f"\n{backend_db.engine.dialect.name}: {len(latencies_ms)} annotations by {THREADS} threads in {RUN_SECONDS:.0f} s, "
        f"write latency p50 {np.percentile(latencies_ms, 50):.1f} ms, p99 {np.percentile(latencies_ms, 99):.1f} ms, "
        f"max {latencies_ms.max():.1f} ms"
    )


def test_two_labelers_adding_the_same_class_at_once_get_one_class_and_a_clear_error(backend_db, tmp_path):
    project = ensure_project(backend_db, name="p", root=None, root_if_new=tmp_path)
    second, outcome = in_a_thread(lambda: add_label_class(backend_db, project=project, name="cow"))
    with backend_db.writing() as session:  # the first labeler's transaction, still open
        queries.add_label_class(session, project.id, "cow")
        second.start()
        wait_until_a_writer_waits(backend_db)
    second.join(timeout=30)

    assert len(outcome) == 1 and isinstance(outcome[0], UserError) and "already has a class" in str(outcome[0])
    with backend_db.reading() as session:
        assert list(queries.label_classes_by_name(session, project.id, ["cow"])) == ["cow"]


def test_two_commands_creating_the_same_project_at_once_both_get_it(backend_db, tmp_path):
    second, outcome = in_a_thread(lambda: ensure_project(backend_db, name="p", root=None, root_if_new=tmp_path))
    with backend_db.writing() as session:  # the first command's transaction, still open
        created = queries.add_project(session, name="p", root_path=str(tmp_path.resolve()))
        second.start()
        wait_until_a_writer_waits(backend_db)
        created_id = created.id
    second.join(timeout=30)
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert outcome[0].id == created_id


def test_two_admins_renaming_classes_to_one_name_at_once_get_a_clear_error(backend_db, tmp_path):
    from types import SimpleNamespace

    from services.labeling.classes import rename_class
    from storage.labels import label_queries

    project = ensure_project(backend_db, name="p", root=None, root_if_new=tmp_path)
    first, other = (add_label_class(backend_db, project=project, name=name) for name in ("calf", "heifer"))
    engine = SimpleNamespace(
        db=backend_db, project_id=project.id, reload_classes=lambda: None
    )  # what rename_class uses
    second, outcome = in_a_thread(lambda: rename_class(engine, other.id, "cow"))
    with backend_db.writing() as session:  # the first admin's rename, still open
        label_queries.set_class_name(session, first.id, "cow")
        second.start()
        wait_until_a_writer_waits(backend_db)
    second.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], UserError) and "already a class called 'cow'" in str(outcome[0])
    with backend_db.reading() as session:
        assert list(queries.label_classes_by_name(session, project.id, ["cow", "heifer"])) == ["cow", "heifer"]
