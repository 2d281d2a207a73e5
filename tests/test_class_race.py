"""Two people adding one class (or its case twin) at the same instant get one class: the second is
told it exists, on SQLite and on PostgreSQL, whose writers run side by side; so is a rename, and
so is an import that creates the classes it names."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from services.errors import UserError
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class, rename_class
from services.projects import ensure_project, get_project
from services.transfer.imports import import_file
from storage import queries
from storage.labels import label_queries
from tests.images import write_image
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


@pytest.fixture
def project_with_an_image(backend_db, backend_settings, tmp_path):
    """Project "p" holding one image, a.png."""
    write_image(tmp_path / "images" / "a.png", 0)
    ingest(backend_db, backend_settings, source=tmp_path / "images", project="p")
    return get_project(backend_db, "p")


def import_labeling_a_png(db, name):
    """Import a CSV that labels a.png ``name``, creating the class if the project lacks it."""
    csv = f"path,labels\na.png,{name}\n".encode()
    return import_file(db, "p", csv, file_name="labels.csv", create_classes=True)


@pytest.mark.parametrize("imported_name", ["dog", "Dog"])
def test_an_import_that_creates_a_class_being_added_uses_it_or_reports_the_case_twin(
    backend_db, project_with_an_image, monkeypatch, imported_name
):
    project = project_with_an_image
    inserted, go_on = first_insert_pauses(monkeypatch)
    adder, added = in_a_thread(lambda: add_label_class(backend_db, project=project, name="dog"))
    adder.start()
    assert inserted.wait(30)
    importer, imported = in_a_thread(lambda: import_labeling_a_png(backend_db, imported_name))
    importer.start()
    wait_until_a_writer_waits(backend_db, importer)
    go_on.set()
    adder.join(30)
    importer.join(30)

    assert added[0].name == "dog"
    report = imported[0]
    assert not isinstance(report, Exception), report  # was a raw UniqueViolation on PostgreSQL for "dog"
    if imported_name == "dog":
        assert (report.imported, report.created_classes, report.bad_names) == (1, [], [])
    else:  # was a second class "Dog" on PostgreSQL
        assert report.imported == 0 and "only in case" in report.bad_names[0].reason
    with backend_db.reading() as session:
        assert [c.name for c in label_queries.label_classes(session, project.id)] == ["dog"]


@pytest.mark.parametrize("added_name", ["dog", "Dog"])
def test_adding_a_class_that_an_import_is_creating_is_refused(
    backend_db, project_with_an_image, monkeypatch, added_name
):
    project = project_with_an_image
    inserted, go_on = first_insert_pauses(monkeypatch)
    importer, imported = in_a_thread(lambda: import_labeling_a_png(backend_db, "dog"))
    importer.start()
    assert inserted.wait(30)
    adder, added = in_a_thread(lambda: add_label_class(backend_db, project=project, name=added_name))
    adder.start()
    wait_until_a_writer_waits(backend_db, adder)
    go_on.set()
    importer.join(30)
    adder.join(30)

    assert imported[0].created_classes == ["dog"]
    assert isinstance(added[0], UserError), added  # "Dog" was added beside the imported "dog" on PostgreSQL
    assert "already has a class called" in str(added[0])
    with backend_db.reading() as session:
        assert [c.name for c in label_queries.label_classes(session, project.id)] == ["dog"]


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
