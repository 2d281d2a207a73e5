"""The Dashboard page: counts, progress, learning curve from audit asks, model versions, pace."""

import json

import pytest

from services.evaluation.dashboard import dashboard
from services.labeling.session import LabelingSession
from services.teams.leases import TeamSettings, save_team_settings
from tests.app_helpers import open_page
from tests.labeling_project import class_id, true_class

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_overlap_asks(engine):
    """A second annotator gets no overlap asks (second opinions on labeled items, never
    audits): the counts below would otherwise vary from run to run."""
    save_team_settings(engine.db, engine.project_id, TeamSettings(overlap_share=0.0))


def label_truly(engine, n, annotator="ann"):
    session = LabelingSession(engine, annotator)
    for _ in range(n):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])


def test_dashboard_counts_labels_and_scores_audit_asks_against_the_serving_model(engine):
    label_truly(engine, 8)
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    engine.set_selection("default", audit_share=1.0)  # every ask is an audit ask
    label_truly(engine, 4, annotator="other")

    figures = dashboard(engine.db, "default")
    assert figures.n_items == 24 and figures.n_labeled == 12
    assert sum(figures.class_counts.values()) == 12
    assert figures.curve is not None and figures.curve.n_audits.sum() == 4
    assert figures.curve.n_labels.tolist() == [8]
    assert set(figures.per_minute) == {"ann", "other"}

    assert figures.estimate is not None and figures.estimate.audit_n == 4
    assert figures.stop is not None and figures.stop.more_labels == 76  # 76 audits at audit_share 1.0
    engine.retrain_now()  # its out-of-fold fits come with the version after them
    assert engine.loop.wait_idle(60)
    estimate = dashboard(engine.db, "default").estimate
    assert estimate.oof_accuracy is not None and estimate.oof_weight > 0 and "out-of-fold" in estimate.basis

    app = open_page("pages/dashboard.py")
    assert {m.label: m.value for m in app.metric}["Labeled images"] == "12"
    assert "Accuracy of the newest model (estimate)" in {m.label for m in app.metric}
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # labels per class, learning curve, labels per minute
    bars = json.loads(charts[0].proto.spec)["data"][0]
    assert sum(bars["x"]) == 12
    assert len(app.dataframe) == 1  # model versions


def test_an_undone_audit_answer_no_longer_scores_the_model(engine):
    label_truly(engine, 8)
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    engine.set_selection("default", audit_share=1.0)
    session = LabelingSession(engine, "other")
    for _ in range(3):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    assert dashboard(engine.db, "default").curve.n_audits.sum() == 3
    session.undo()  # the newest answer is withdrawn: its audit is unanswered again
    assert dashboard(engine.db, "default").curve.n_audits.sum() == 2


def test_dashboard_of_an_unlabeled_project_explains_what_is_missing(engine):
    app = open_page("pages/dashboard.py")
    captions = " ".join(c.value for c in app.caption)
    assert "none has been answered yet" in captions and "No model yet" in captions
