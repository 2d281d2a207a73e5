"""Switching a project to single-label while an annotator saves a label naming several classes,
on SQLite and PostgreSQL: whichever transaction gets there first, the project never ends up
single-label with an image that carries several classes.

PostgreSQL runs the two writers side by side (READ COMMITTED), so each test holds the first
writer's transaction open until the second one waits on its lock (or, without the lock,
finishes), then lets the first commit. SQLite serialises writers, so there the second one
simply waits for the first to commit.
"""

import threading

import pytest

from services import projects
from services.errors import UserError
from services.labeling.classes import add_label_class
from services.projects import ensure_project, get_project, set_multi_label
from storage import queries
from storage.labels import label_queries
from storage.models import AnnotationSource, ItemStatus
from tests.labels_by_name import append_annotation, record_annotation
from tests.lock_waits import in_a_thread, wait_until_a_writer_waits


def _multi_label_project(db, tmp_path) -> dict[str, int]:
    """A multi-label project 'p' with classes cat and dog; return its item ids by path."""
    project = ensure_project(db, name="p", root=None, root_if_new=tmp_path, multi_label=True)
    for name in ("cat", "dog"):
        add_label_class(db, project=project, name=name)
    rows = [
        {
            "project_id": project.id,
            "path": f"img{n}.png",
            "sha256": f"{n:064x}",
            "size_bytes": 1,
            "mtime_ns": 1,
            "status": ItemStatus.OK,
        }
        for n in range(3)
    ]
    with db.writing() as session:
        ids = [item_id for item_id, _ in queries.insert_items(session, rows)]
    return {row["path"]: item_id for row, item_id in zip(rows, ids)}


def _several_class_images(db) -> list[int]:
    with db.reading() as session:
        project = queries.find_project(session, "p")
        return sorted(
            item_id
            for item_id, label in label_queries.current_labels(session, project.id).items()
            if len(label.class_ids) > 1
        )


def _switch_waiting_after_its_count(monkeypatch):
    """Make set_multi_label stop, its transaction open, right after it counted the images with
    several classes; return (counted, go): set once it stopped, and the event that lets it go on."""
    counted, go = threading.Event(), threading.Event()
    count = projects._multi_class_images

    def count_then_wait(session, project_id):
        several = count(session, project_id)
        counted.set()
        assert go.wait(30), "the test never let the switch go on"
        return several

    monkeypatch.setattr(projects, "_multi_class_images", count_then_wait)
    return counted, go


def test_a_label_of_several_classes_saved_first_makes_the_switch_to_single_label_refuse(backend_db, tmp_path):
    items = _multi_label_project(backend_db, tmp_path)
    switch, switched = in_a_thread(lambda: set_multi_label(backend_db, "p", False))
    with backend_db.writing() as session:  # the annotator's label, written and not yet committed
        append_annotation(
            session,
            item_id=items["img1.png"],
            class_names=["cat", "dog"],
            annotator="ann",
            source=AnnotationSource.HUMAN,
            duration_ms=None,
            supersedes_id=None,
        )
        switch.start()
        wait_until_a_writer_waits(backend_db, switch)
    switch.join(timeout=30)

    assert not switch.is_alive() and len(switched) == 1
    assert isinstance(switched[0], UserError), f"the switch went through: {switched[0]!r}"
    assert "stays multi-label: 1 image carries more than one class" in str(switched[0])
    assert get_project(backend_db, "p").multi_label is True
    assert _several_class_images(backend_db) == [items["img1.png"]]


def test_a_switch_to_single_label_committed_first_makes_a_label_of_several_classes_refuse(
    backend_db, tmp_path, monkeypatch
):
    items = _multi_label_project(backend_db, tmp_path)
    counted, go = _switch_waiting_after_its_count(monkeypatch)
    switch, switched = in_a_thread(lambda: set_multi_label(backend_db, "p", False))
    label, labeled = in_a_thread(
        lambda: record_annotation(backend_db, item_id=items["img2.png"], class_names=["cat", "dog"], annotator="bob")
    )
    switch.start()
    try:
        assert counted.wait(30), "the switch never counted"
        label.start()  # the project is still multi-label for everyone else: the switch has not committed
        wait_until_a_writer_waits(backend_db, label)
    finally:
        go.set()
    switch.join(timeout=30)
    label.join(timeout=30)

    assert not switch.is_alive() and not label.is_alive()
    assert switched == [True]
    assert len(labeled) == 1 and isinstance(labeled[0], UserError), f"the label was saved: {labeled[0]!r}"
    message = str(labeled[0])
    assert message.startswith("img2.png was not labeled: project 'p' ") and "choose one class, not cat, dog" in message
    # PostgreSQL: the label read the project as multi-label, then waited for the switch's lock.
    # SQLite: it waited for the switch to commit before reading anything.
    assert (
        "became single-label just now" if backend_db.engine.dialect.name == "postgresql" else "is single-label"
    ) in message
    assert get_project(backend_db, "p").multi_label is False
    assert _several_class_images(backend_db) == []


ONLY_POSTGRES = pytest.mark.parametrize("backend_settings", ["postgresql"], indirect=True)  # SQLite serialises writers


@ONLY_POSTGRES
def test_a_label_of_one_class_does_not_wait_for_a_switch_in_progress(backend_db, tmp_path, monkeypatch):
    items = _multi_label_project(backend_db, tmp_path)
    counted, go = _switch_waiting_after_its_count(monkeypatch)
    switch, switched = in_a_thread(lambda: set_multi_label(backend_db, "p", False))
    label, labeled = in_a_thread(
        lambda: record_annotation(backend_db, item_id=items["img0.png"], class_names=["cat"], annotator="ann")
    )
    switch.start()
    try:
        assert counted.wait(30), "the switch never counted"
        label.start()
        label.join(timeout=10)  # while the switch holds the project row
        assert not label.is_alive() and len(labeled) == 1 and isinstance(labeled[0], int), labeled
    finally:
        go.set()
    switch.join(timeout=30)
    assert switched == [True]


@ONLY_POSTGRES
def test_labels_of_several_classes_do_not_wait_for_each_other(backend_db, tmp_path):
    items = _multi_label_project(backend_db, tmp_path)
    with backend_db.writing() as session:  # one annotator's label, not yet committed
        append_annotation(
            session,
            item_id=items["img0.png"],
            class_names=["cat", "dog"],
            annotator="ann",
            source=AnnotationSource.HUMAN,
            duration_ms=None,
            supersedes_id=None,
        )
        other, saved = in_a_thread(
            lambda: record_annotation(
                backend_db, item_id=items["img1.png"], class_names=["cat", "dog"], annotator="bob"
            )
        )
        other.start()
        other.join(timeout=10)
        assert not other.is_alive() and len(saved) == 1 and isinstance(saved[0], int), saved
    assert _several_class_images(backend_db) == [items["img0.png"], items["img1.png"]]
