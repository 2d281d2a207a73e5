"""The service layer end to end on SQLite and PostgreSQL: ingest, classes, labels, undo, export, import."""

from dataclasses import replace

import pytest

from services.errors import UserError
from services.evaluation.dashboard import dashboard
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project, project_counts
from services.transfer.export import labeled_images
from services.transfer.imports import import_file
from storage.labels import label_queries
from tests.images import write_image
from tests.labels_by_name import NewLabel, record_annotation, record_annotations
from tests.team_project import item_ids_by_path

pytestmark = pytest.mark.slow


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    for seed in range(6):
        write_image(folder / f"img{seed}.png", seed)
    write_image(folder / "copy_of_img0.png", 0)  # which of the two becomes the item is not asserted
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def _current(db, project):
    """Item path -> sorted class names of its current label (empty when cleared)."""
    with db.reading() as session:
        names = {c.id: c.name for c in label_queries.label_classes(session, project.id, include_archived=True)}
        current = label_queries.current_labels(session, project.id)
        paths = {
            item_id: item.path for item_id, item in label_queries.items_by_id(session, project.id, current).items()
        }
    return {paths[item_id]: sorted(names[c] for c in label.class_ids) for item_id, label in current.items()}


def test_a_labeling_session_through_the_services(backend_db, backend_settings, images):
    settings = replace(backend_settings, ingest_workers=1)
    report = ingest(backend_db, settings, source=images, project="p")
    assert (report.added, report.duplicates, len(report.errors)) == (6, 1, 1)
    assert ingest(backend_db, settings, source=images, project="p").skipped_known == 8
    project = get_project(backend_db, "p")
    counts = project_counts(backend_db, project)
    assert (counts.ok, counts.error, counts.duplicate_files) == (6, 1, 1)

    for name in ("cat", "dog"):
        add_label_class(backend_db, project=project, name=name)
    with pytest.raises(UserError, match="already has a class"):
        add_label_class(backend_db, project=project, name="cat")
    with backend_db.reading() as session:
        ids = item_ids_by_path(session, project.id, [f"img{seed}.png" for seed in range(1, 6)])

    first = record_annotation(
        backend_db, item_id=ids["img1.png"], class_names=["cat"], annotator="ann", duration_ms=700
    )
    record_annotation(backend_db, item_id=ids["img2.png"], class_names=["dog"], annotator="bob")
    record_annotations(
        backend_db, [NewLabel(ids["img3.png"], ["cat"]), NewLabel(ids["img4.png"], ["dog"])], annotator="ann"
    )
    correction = record_annotation(
        backend_db, item_id=ids["img1.png"], class_names=["dog"], annotator="ann", supersedes_id=first
    )
    record_annotation(
        backend_db, item_id=ids["img1.png"], class_names=[], annotator="ann", supersedes_id=correction
    )  # undo
    assert _current(backend_db, project) == {
        "img1.png": [],
        "img2.png": ["dog"],
        "img3.png": ["cat"],
        "img4.png": ["dog"],
    }

    assert [(image.path, image.labels) for image in labeled_images(backend_db, "p")] == [
        ("img2.png", ["dog"]),
        ("img3.png", ["cat"]),
        ("img4.png", ["dog"]),
    ]
    csv_text = "path,labels\nimg5.png,bird\nimg2.png,dog\nnowhere.png,cat\n"
    imported = import_file(backend_db, "p", csv_text.encode(), file_name="labels.csv", create_classes=True)
    assert (imported.imported, imported.unchanged, [u.path for u in imported.unknown], imported.created_classes) == (
        1,
        1,
        ["nowhere.png"],
        ["bird"],
    )

    figures = dashboard(backend_db, "p")
    assert (figures.n_items, figures.n_labeled) == (6, 4)
    assert figures.class_counts == {"cat": 1, "dog": 2, "bird": 1}
    assert set(figures.per_minute) == {"ann", "bob"}
