"""The data-engine pages: label issues (keyboard review), triage, failure slices, and the dashboard trend."""

import json

import pytest

from core.quality.slices import SliceConfig
from services.data_engine import label_issues as label_issue_service
from services.data_engine.slices import create_slice, project_slices
from services.labeling.classes import set_archived
from storage.models import Annotation, AnnotationSource, Role
from tests.app_helpers import open_page, shortcuts
from tests.test_label_issues import MECHANICS, label_all
from tests.test_slices import label_truly, retrain

pytestmark = pytest.mark.slow


def planted_errors(engine):
    """The first airplane and the first frog image (by path) get the next class instead."""
    return {sorted(p for p in engine.pool.paths if p.startswith(f"{name}/"))[0] for name in ("airplane", "frog")}


@pytest.fixture
def lifted_gates(monkeypatch):
    """The sample project's 24 labels are below the default gates: lift them to test the review keys."""
    monkeypatch.setattr(label_issue_service, "DEFAULT_CONFIG", MECHANICS)


def test_label_issue_page_keeps_on_enter_and_relabels_on_l(engine, lifted_gates):
    label_all(engine, wrong_for=planted_errors(engine))
    app = open_page("pages/label_issues.py", role=Role.REVIEWER)
    keys = shortcuts(app)
    assert keys["enter"].startswith("Keep") and keys["l"].startswith("Relabel as") and keys["s"] == "Skip"
    assert "Enter keeps the given label" in app.caption[0].value and "Out-of-fold accuracy" in app.caption[0].value
    assert "Confidence that the given label is wrong" in app.markdown[0].value
    heatmap = json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]
    assert sum(map(sum, heatmap["z"])) == 24
    shown = app.text[0].value
    assert shown in planted_errors(engine)

    next(b for b in app.button if b.proto.shortcut == "l").click().run()
    assert not app.exception
    item = engine.pool.item_ids[engine.pool.paths.index(shown)]
    label = engine.current_label(int(item))
    assert engine.classes[label.class_ids[0]].name == shown.split("/")[0]
    with engine.db.reading() as session:
        assert session.get(Annotation, label.annotation_id).source is AnnotationSource.REVIEW

    # Enter on the next issue keeps its given label (a review annotation with the same class).
    kept = app.text[0].value
    item = int(engine.pool.item_ids[engine.pool.paths.index(kept)])
    before = engine.current_label(item)
    next(b for b in app.button if b.proto.shortcut == "enter").click().run()
    assert not app.exception
    after = engine.current_label(item)
    assert after.class_ids == before.class_ids and after.annotation_id != before.annotation_id


def test_label_issue_page_flags_nothing_and_warns_when_the_evidence_is_weak(engine):
    label_all(engine, wrong_for=planted_errors(engine))
    app = open_page("pages/label_issues.py", role=Role.REVIEWER)
    assert not app.exception and not app.text  # no issue on screen
    assert any("No labels flagged" in w.value and "labels in every class" in w.value for w in app.warning)
    assert "enter" not in shortcuts(app)


def test_a_refused_relabel_keeps_its_issue_on_screen_with_the_reason(engine, lifted_gates):
    label_all(engine, wrong_for=planted_errors(engine))
    app = open_page("pages/label_issues.py", role=Role.REVIEWER)
    shown = app.text[0].value
    suggested = next(c for c in engine.active_classes() if c.name == shown.split("/")[0])
    set_archived(engine, suggested.id, True)  # an admin, meanwhile

    next(b for b in app.button if b.proto.shortcut == "l").click().run()

    assert not app.exception and app.text[0].value == shown
    assert "archived" in app.warning[0].value


def test_label_issue_page_is_for_reviewers(engine):
    app = open_page("pages/label_issues.py", name="someone", role=Role.ANNOTATOR)
    assert "reviewer role" in app.error[0].value


def test_triage_page_reports_the_unlabeled_images(engine):
    label_truly(engine, 10)
    app = open_page("pages/triage.py")
    app.button[0].click().run()  # the form's submit: every unlabeled image
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Unlabeled images in the batch"] == "14"
    assert len(app.dataframe) == 1


def test_slices_page_and_dashboard_show_each_slice_trend(engine):
    label_truly(engine, 12)
    retrain(engine)
    cats = [i for i, p in zip(engine.pool.item_ids.tolist(), engine.pool.paths) if p.startswith("cat/")]
    create_slice(engine, name="cats", example_item_ids=cats[:2], config=SliceConfig(k=8))
    label_truly(engine, 6)
    retrain(engine)
    [found] = project_slices(engine.db, "default")
    assert len(found.trend) == 2

    app = open_page("pages/slices.py")
    assert not app.exception
    assert [s.value for s in app.subheader] == ["cats"]
    assert {m.label: m.value for m in app.metric}["Members"] == "8"

    dashboard = open_page("pages/dashboard.py")
    charts = dashboard.get("plotly_chart")
    measured = [p for p in found.trend if p.accuracy is not None]
    assert measured  # 18 of 24 images are labeled: some of the 8 members are
    trend = json.loads(charts[-1].proto.spec)["data"][0]
    assert trend["name"] == "cats" and len(trend["y"]) == len(measured)


def test_slices_page_saves_a_slice_from_example_paths(engine):
    frogs = [p for p in engine.pool.paths if p.startswith("frog/")][:2]
    app = open_page("pages/slices.py")
    assert "No failure slices yet" in app.info[0].value
    app.text_input[0].input("frogs")
    app.text_area[0].input("\n".join(frogs))
    next(b for b in app.button if b.label == "Save the slice").click().run()
    assert not app.exception
    [found] = project_slices(engine.db, "default")
    assert found.name == "frogs" and found.created_by == "ann"
    assert found.example_item_ids == sorted(int(engine.pool.item_ids[engine.pool.paths.index(p)]) for p in frogs)
    assert app.success[0].value == "Slice frogs saved\\."  # escaped markdown

    app.text_input[0].input("bad")
    app.text_area[0].input("no/such.jpg")
    next(b for b in app.button if b.label == "Save the slice").click().run()
    assert "no embedded image" in app.error[0].value
