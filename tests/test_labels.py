import pytest
from sqlalchemy import select

from services.errors import UserError
from services.labeling.classes import add_label_class
from services.projects import ensure_project
from storage import queries
from storage.models import Annotation, AnnotationSource, ItemStatus, Project
from storage.types import utc_now
from tests.labels_by_name import record_annotation


@pytest.fixture
def project(db, tmp_path):
    project = ensure_project(db, name="p", root=None, root_if_new=tmp_path)
    for name in ("cat", "dog"):
        add_label_class(db, project=project, name=name)
    return project


def _item(db, project, status=ItemStatus.OK):
    row = {
        "project_id": project.id,
        "path": f"{status.value}.png",
        "sha256": None,
        "size_bytes": 1,
        "mtime_ns": 1,
        "status": status,
    }
    with db.writing() as session:
        [(item_id, _)] = queries.insert_items(session, [row])
    return item_id


def test_undo_is_a_new_row_that_supersedes(db, project):
    item_id = _item(db, project)
    first = record_annotation(db, item_id=item_id, class_names=["cat"], annotator="ann", duration_ms=900)
    undo = record_annotation(db, item_id=item_id, class_names=[], annotator="ann", supersedes_id=first)

    with db.reading() as session:
        rows = list(session.scalars(select(Annotation).order_by(Annotation.id)))
        current = queries.latest_annotation(session, item_id)
    assert [(r.id, [c.name for c in r.classes], r.supersedes_id) for r in rows] == [
        (first, ["cat"], None),
        (undo, [], first),
    ]
    assert current.id == undo


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": ["cat", "dog"]}, "single-label"),
        ({"class_names": ["cow"]}, "no class 'cow'"),
        ({"class_names": ["cat"], "annotator": None}, "needs the annotator"),
        ({"class_names": ["cat"], "supersedes_id": 12345}, "not an annotation of item"),
    ],
)
def test_bad_annotations_are_refused_with_the_reason(db, project, kwargs, message):
    item_id = _item(db, project)
    with pytest.raises(UserError, match=message):
        record_annotation(db, item_id=item_id, **({"annotator": "ann"} | kwargs))
    with db.reading() as session:
        assert session.scalars(select(Annotation)).all() == []


@pytest.mark.slow
def test_multi_label_project_takes_several_classes(db, project):
    with db.writing() as session:
        session.get(Project, project.id).multi_label = True
    item_id = _item(db, project)

    annotation_id = record_annotation(db, item_id=item_id, class_names=["dog", "cat", "dog"], annotator="ann")

    with db.reading() as session:
        assert sorted(c.name for c in session.get(Annotation, annotation_id).classes) == ["cat", "dog"]


def test_rejected_files_and_archived_classes_cannot_be_labeled(db, project):
    error_item = _item(db, project, status=ItemStatus.ERROR)
    with pytest.raises(UserError, match="rejected file"):
        record_annotation(db, item_id=error_item, class_names=["cat"], annotator="ann")
    with db.writing() as session:
        queries.label_classes_by_name(session, project.id, ["dog"])["dog"].archived_at = utc_now()
    with pytest.raises(UserError, match="archived"):
        record_annotation(db, item_id=_item(db, project), class_names=["dog"], annotator="ann")


def test_imported_labels_need_no_annotator(db, project):
    annotation_id = record_annotation(
        db, item_id=_item(db, project), class_names=["cat"], annotator=None, source=AnnotationSource.IMPORT
    )
    with db.reading() as session:
        assert session.get(Annotation, annotation_id).annotator_id is None


def test_duplicate_class_names_are_refused(db, project):
    with pytest.raises(UserError, match="already has a class"):
        add_label_class(db, project=project, name=" cat ")
