"""Classes and settings: rename, merge (history kept), archive, labeling mode, selection settings."""

import time

import pytest
from sqlalchemy import select

from services.engine.lifecycle import close_engines, grow_pool
from services.labeling.session import LabelingSession
from services.projects import get_project
from storage.models import Annotation, AnnotationSource
from tests.app_helpers import open_page
from tests.labeling_project import class_id, ready_engine

pytestmark = pytest.mark.slow


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


def _shown(elements) -> list[str]:
    """The texts of messages, markdown escapes taken out."""
    return [element.value.replace("\\", "") for element in elements]


def _engine_in_mode(engine, multi_label: bool):
    """The project's engine once the app has rebuilt it in the new mode (page runs drive the rebuild)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        startup = grow_pool(engine.db, engine.settings)
        if startup.engine.multi_label == multi_label and startup.growing is None:
            return startup.engine
        time.sleep(0.05)
    raise AssertionError(f"the engine was not rebuilt as multi_label={multi_label}")


def test_switching_to_multi_label_brings_toggles_and_back_is_refused_while_an_image_has_two_classes(engine):
    app = open_page("pages/classes.py")
    assert "Switch to single-label" not in [b.label for b in app.button]
    app.button(key="mode-multi").click().run()

    assert not app.exception
    assert "Switched to multi-label: an image may get several classes." in _shown(app.success)
    assert get_project(engine.db, "default").multi_label
    multi = _engine_in_mode(engine, True)

    label_page = open_page()
    assert "Save the chosen classes" in [b.label for b in label_page.button]  # the Label page toggles now
    session = LabelingSession(multi, "ann")
    ask = session.current()
    session.label(ask.item_id, [class_id(multi, "cat"), class_id(multi, "frog")])

    app = open_page("pages/classes.py")
    app.button(key="mode-single").click().run()
    assert not app.exception
    assert any("stays multi-label: 1 image carries more than one class" in e for e in _shown(app.error))
    assert get_project(engine.db, "default").multi_label

    session.undo()  # no image has two classes now
    session.close()
    app.button(key="mode-single").click().run()
    assert "Switched to single-label: each image gets one class." in _shown(app.success)
    assert not get_project(engine.db, "default").multi_label
    _engine_in_mode(engine, False)
    assert "Save the chosen classes" not in [b.label for b in open_page().button]
