"""Label issues: planted label errors head the review queue; keep and relabel write review annotations."""

import numpy as np
import pytest

from core.model.probe import LinearProbe
from core.quality.label_issues import LabelIssueConfig, confusion_counts, find_issues
from services.data_engine.label_issues import label_issue_queue, review_label
from services.errors import UserError
from services.labeling.session import LabelingSession
from storage.labels import label_queries
from storage.models import Annotation, AnnotationSource
from tests.labeling_project import class_id, true_class


def gaussian_clusters(n_classes=4, per_class=150, dim=32, spread=0.35, seed=0):
    """Unit-norm points around ``n_classes`` random directions, and their true classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_classes), per_class)
    X = centres[y] + spread * rng.normal(size=(len(y), dim)) / np.sqrt(dim) * 3
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def plant_errors(y, n_errors, n_classes, seed=1):
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), n_errors, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, n_errors)) % n_classes
    return noisy, flipped


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spread, min_recall", [(0.35, 0.7), (0.7, 0.5)])
def test_planted_label_errors_are_flagged_and_correct_labels_are_not(seed, spread, min_recall):
    # Separated (a clean model ~95% right) and overlapping clusters (~90%) with 10% of the labels flipped.
    X, y = gaussian_clusters(spread=spread, seed=seed)
    noisy, flipped = plant_errors(y, 60, 4, seed=seed + 10)
    probe = LinearProbe(n_folds=5).fit(X, noisy)
    issues = find_issues(noisy, probe.oof_proba_)

    precision = np.isin(issues.positions, flipped).mean()
    recall = np.isin(flipped, issues.positions).mean()
    print(f"seed {seed}: {len(issues.positions)} flagged, precision {precision:.2f}, recall {recall:.2f}")
    assert issues.warning is None and precision >= 0.9 and recall >= min_recall
    # The suggestion is the true class for the planted errors the queue caught.
    caught = np.isin(issues.positions, flipped)
    assert (issues.suggested[caught] == y[issues.positions[caught]]).mean() >= 0.9
    # Ranked by self-confidence, lowest first; strong evidence only.
    assert np.all(np.diff(issues.self_confidence) >= -1e-12)
    assert np.all(issues.confidence >= 1 - LabelIssueConfig().max_given_proba)
    assert 0.7 < issues.accuracy < 1 and 0.25 <= issues.chance < 0.3 and issues.skill > 0.5


def test_no_signal_gives_no_flags_and_says_why():
    # Features unrelated to the labels: out-of-fold accuracy near chance.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 32)).astype(np.float32)
    labels = rng.integers(0, 4, 400)
    probe = LinearProbe(n_folds=5).fit(X, labels)
    issues = find_issues(labels, probe.oof_proba_)
    assert len(issues.positions) == 0 and "too weak" in issues.warning and issues.skill < 0.3
    # Without the gate the same probabilities would give a queue of false alarms.
    ungated = find_issues(labels, probe.oof_proba_, config=LabelIssueConfig(min_skill=-1.0))
    assert ungated.warning is None


def test_too_few_labels_per_class_give_no_flags_and_say_why():
    X, y = gaussian_clusters(per_class=12, spread=0.35, seed=2)
    noisy, _ = plant_errors(y, 4, 4, seed=3)
    probe = LinearProbe(n_folds=5).fit(X, noisy)
    issues = find_issues(noisy, probe.oof_proba_)
    assert len(issues.positions) == 0 and "labels in every class" in issues.warning
    assert len(find_issues(noisy, probe.oof_proba_, config=LabelIssueConfig(min_per_class=5)).positions) > 0


def test_cleanlab_runs_without_a_process_pool(monkeypatch):
    # A forked pool inside the server hung its shutdown: the single-label path must not start one.
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("cleanlab started a process pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    X, y = gaussian_clusters(spread=0.35, seed=0)
    noisy, _ = plant_errors(y, 60, 4, seed=10)
    probe = LinearProbe(n_folds=5).fit(X, noisy)
    assert len(find_issues(noisy, probe.oof_proba_).positions) > 0


def test_confusion_counts_given_against_predicted_over_every_labeled_item():
    X, y = gaussian_clusters(n_classes=3, per_class=40, seed=4)
    noisy, _ = plant_errors(y, 6, 3, seed=5)
    probe = LinearProbe(n_folds=5).fit(X, noisy)
    issues = find_issues(noisy, probe.oof_proba_)
    assert issues.confusion.sum() == len(y)
    assert issues.confusion.sum(axis=1).tolist() == np.bincount(noisy, minlength=3).tolist()
    assert confusion_counts([0, 1, 1], [1, 1, 0], 2).tolist() == [[0, 1], [1, 1]]


def test_too_few_labels_or_one_class_give_an_empty_queue():
    proba = np.full((5, 2), 0.5)
    assert len(find_issues(np.zeros(5, int), proba).positions) == 0
    assert "from 10 labels" in find_issues(np.zeros(5, int), proba).warning
    assert len(find_issues(np.array([0, 1, 0, 1, 0]), proba, config=LabelIssueConfig(min_labels=10)).positions) == 0
    with pytest.raises(ValueError, match="columns"):
        find_issues(np.array([0, 3]), np.full((2, 2), 0.5))


# ----- through the service layer on the small sample project ----------------------------


# The sample project (24 labels of weak 32-pixel features) is far below the default gates; the
# tests of the queue's mechanics and of the pages lift them (and the probability bound).
MECHANICS = LabelIssueConfig(min_per_class=1, min_skill=-1.0, max_given_proba=1.0)


def label_all(engine, wrong_for=()):
    """Label every item with its true class, except ``wrong_for`` paths, which get another class."""
    session = LabelingSession(engine, "ann")
    names = [c.name for c in engine.active_classes()]
    while (ask := session.current()) is not None:
        truth = true_class(ask.path)
        name = names[(names.index(truth) + 1) % len(names)] if ask.path in wrong_for else truth
        session.label(ask.item_id, [class_id(engine, name)])
    session.close()


@pytest.mark.slow
def test_queue_on_the_sample_project_finds_planted_errors_and_reviews_supersede(engine):
    # Two planted errors: the first image of "airplane" and of "frog" labeled as the next class.
    wrong = {p for p in engine.pool.paths if p.split("/")[0] in ("airplane", "frog")}
    wrong = {sorted(p for p in wrong if p.startswith(c))[0] for c in ("airplane", "frog")}
    label_all(engine, wrong_for=wrong)
    honest = label_issue_queue(engine)  # the default gates: no flags, and why
    assert honest.issues == [] and "labels in every class" in honest.warning

    queue = label_issue_queue(engine, config=MECHANICS)
    assert queue.n_labeled == 24 and queue.confusion.sum() == 24
    flagged = [issue.path for issue in queue.issues]
    print("flagged:", flagged)
    # 24 labels of weak 32-pixel features: the synthetic tests above measure precision; here
    # the most suspicious label must be a planted one, with its true class suggested.
    assert flagged and flagged[0] in wrong
    first = queue.issues[0]
    assert engine.classes[first.suggested].name == true_class(first.path)

    annotation_id = review_label(engine, first, class_id=first.suggested, reviewer="rev")
    with engine.db.reading() as session:
        row = session.get(Annotation, annotation_id)
        assert row.source is AnnotationSource.REVIEW and row.supersedes_id == first.annotation_id
        assert label_queries.current_labels(session, engine.project_id)[first.item_id].class_ids == (first.suggested,)
    with pytest.raises(UserError, match="labeled again"):
        review_label(engine, first, class_id=first.given, reviewer="rev")
    # A reviewed item leaves the queue.
    assert first.item_id not in {issue.item_id for issue in label_issue_queue(engine, config=MECHANICS).issues}
