"""Two people adding one class (or its case twin) at the same instant get one class: the second is
told it exists, on SQLite and on PostgreSQL, whose writers run side by side; so is a rename."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from services.errors import UserError
from services.labeling.classes import add_label_class, rename_class
from services.projects import ensure_project
from storage import queries
from storage.labels import label_queries
from tests.lock_waits import in_a_thread, wait_until_a_writer_waits


@pytest.mark.parametrize("second_name", ["dog", "Dog"])
def test_two_adders_of_one_class_at_once_make_one_class_and_the_second_is_told(
    backend_db, tmp_path, monkeypatch, second_name
):
    project = ensure_project(backend_db, name="p", root=None, root_if_new=tmp_path)
    inserted, go_on = first_insert_pauses(monkeypatch)
    first, first_outcome = in_a_thread(lambda: add_label_class(backend_db, project=project, name="dog"))
    first.start()
    assert inserted.wait(30)
    second, second_outcome = in_a_thread(lambda: add_label_class(backend_db, project=project, name=second_name))
    second.start()
    wait_until_a_writer_waits(backend_db, second)
    go_on.set()
    first.join(30)
    second.join(30)

    assert first_outcome[0].name == "dog"
    assert isinstance(second_outcome[0], UserError), second_outcome
    assert "already has a class called" in str(second_outcome[0])
    with backend_db.reading() as session:
        assert [c.name for c in label_queries.label_classes(session, project.id)] == ["dog"]


def test_a_rename_to_the_case_twin_of_a_class_being_added_is_refused(backend_db, tmp_path, monkeypatch):
    project = ensure_project(backend_db, name="p", root=None, root_if_new=tmp_path)
    cat = add_label_class(backend_db, project=project, name="cat")
    inserted, go_on = first_insert_pauses(monkeypatch)
    adder, _ = in_a_thread(lambda: add_label_class(backend_db, project=project, name="dog"))
    adder.start()
    assert inserted.wait(30)
    engine = SimpleNamespace(db=backend_db, project_id=project.id, reload_classes=lambda: None)  # what rename uses
    renamer, rename_outcome = in_a_thread(lambda: rename_class(engine, cat.id, "Dog"))
    renamer.start()
    wait_until_a_writer_waits(backend_db, renamer)
    go_on.set()
    adder.join(30)
    renamer.join(30)

    assert isinstance(rename_outcome[0], UserError) and "only in case" in str(rename_outcome[0]), rename_outcome
    with backend_db.reading() as session:
        assert [c.name for c in label_queries.label_classes(session, project.id)] == ["cat", "dog"]


def first_insert_pauses(monkeypatch):
    """The first class insert holds its transaction open after inserting: it sets ``inserted``, waits for ``go_on``."""
    inserted, go_on = threading.Event(), threading.Event()
    insert = queries.add_label_class

    def first_insert_then_pause(session, project_id, name):
        label_class = insert(session, project_id, name)
        if not inserted.is_set():
            inserted.set()
            go_on.wait(30)
        return label_class

    monkeypatch.setattr(queries, "add_label_class", first_insert_then_pause)
    return inserted, go_on
