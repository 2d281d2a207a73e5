"""Classes and settings: rename, merge (history kept), archive, selection settings."""

from sqlalchemy import select

from services.engines import close_engines
from services.labeling import LabelingSession
from storage.models import Annotation, AnnotationSource
from tests.app_helpers import open_page
from tests.labeling_project import class_id, ready_engine


def test_rename_keeps_the_labels_and_shows_the_new_name(engine):
    session = LabelingSession(engine, "ann")
    ask = session.current()
    session.label(ask.item_id, [class_id(engine, "cat")])

    app = open_page("pages/classes.py")
    app.selectbox(key="rename-class").select(engine.classes[class_id(engine, "cat")]).run()
    app.text_input(key="rename-name").input("kitten").run()
    app.button[[b.label for b in app.button].index("Rename")].click().run()

    assert not app.exception
    assert engine.classes[engine.current_label(ask.item_id).class_ids[0]].name == "kitten"
    assert "kitten" in app.dataframe[0].value["class"].tolist()


def test_merge_relabels_with_new_review_annotations_and_archives_the_source(engine):
    session = LabelingSession(engine, "ann")
    cat, frog = class_id(engine, "cat"), class_id(engine, "frog")
    items = []
    for n in range(4):
        ask = session.current()
        session.label(ask.item_id, [cat if n % 2 else frog])
        items.append(ask.item_id)

    app = open_page("pages/classes.py")
    app.selectbox(key="merge-source").select(engine.classes[cat]).run()
    app.selectbox(key="merge-target").select(engine.classes[frog]).run()
    app.button[[b.label for b in app.button].index("Merge")].click().run()

    assert not app.exception
    assert all(engine.current_label(item).class_ids == (frog,) for item in items)
    assert engine.classes[cat].archived and cat not in [c.id for c in engine.active_classes()]
    with engine.db.reading() as db_session:
        reviews = db_session.scalars(select(Annotation).where(Annotation.source == AnnotationSource.REVIEW)).all()
    assert sorted(a.item_id for a in reviews) == sorted(items[1::2]) and all(a.supersedes_id for a in reviews)


def test_selection_settings_are_kept_for_the_next_engine_start(engine):
    app = open_page("pages/classes.py")
    app.selectbox[[s.label for s in app.selectbox].index("Strategy")].select("margin")  # inside a form: no run
    app.slider[[s.label for s in app.slider].index("Audit share (random asks that measure accuracy)")].set_value(0.1)
    app.button[[b.label for b in app.button].index("Save selection settings")].click().run()

    assert engine.selection.strategy == "margin" and engine.selection.config.audit_share == 0.1
    close_engines()
    restarted = ready_engine(engine.db, engine.settings)
    assert restarted.selection == engine.selection
