"""Label issues of multi-label projects: planted class-set errors are flagged by cleanlab's
one-vs-rest finder; keeping, accepting or choosing a set writes review annotations."""

import numpy as np
import pytest
from cleanlab.multilabel_classification.filter import find_label_issues

from core.model.probe import LinearProbe
from core.quality.label_issues import LabelIssueConfig, find_multilabel_issues, suggested_sets
from services.data_engine.label_issues import label_issue_queue, multi_label_issue_queue, review_label_set
from services.errors import UserError
from services.labeling.session import LabelingSession
from storage.models import Annotation, AnnotationSource, Role
from tests.app_helpers import open_page, shortcuts
from tests.labeling_project import CLASSES, class_id, multi_label_engine, true_class


def tagged_clusters(n=600, n_classes=5, dim=32, spread=0.4, seed=0):
    """Unit-norm points at the sum of their classes' random directions plus noise; each item
    has each class with probability 0.3 (at least one)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    Y = (rng.random((n, n_classes)) < 0.3).astype(np.int8)
    empty = np.flatnonzero(Y.sum(axis=1) == 0)
    Y[empty, rng.integers(0, n_classes, len(empty))] = 1
    X = Y @ centres + spread * rng.normal(size=(n, dim)) / np.sqrt(dim) * 3
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), Y


def plant_set_errors(Y, n_errors, seed=1):
    """Flip one class (added or dropped) in ``n_errors`` items' sets, never leaving a set empty."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(Y), n_errors, replace=False)
    noisy = Y.copy()
    for i in flipped:
        c = rng.integers(Y.shape[1])
        noisy[i, c] ^= 1
        if not noisy[i].any():
            noisy[i, (c + 1) % Y.shape[1]] = 1
    return noisy, flipped


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_class_set_errors_are_flagged_worst_first(seed):
    # ~97% of the (item, class) entries right out of fold; 10% of the items get one class flipped.
    X, Y = tagged_clusters(seed=seed)
    noisy, flipped = plant_set_errors(Y, 60, seed=seed + 10)
    probe = LinearProbe(multi_label=True, n_folds=5).fit(X, noisy)
    found = find_multilabel_issues(noisy, probe.oof_proba_)

    recall = np.isin(flipped, found.positions).mean()
    precision = np.isin(found.positions, flipped).mean()
    print(f"seed {seed}: {len(found.positions)} flagged, recall {recall:.2f}, precision {precision:.2f}")
    assert recall >= 0.75 and precision >= 0.75
    # Exactly cleanlab's multi-label flag, ordered by label quality, lowest first.
    lists = [np.flatnonzero(row).tolist() for row in noisy]
    assert set(found.positions.tolist()) == set(np.flatnonzero(find_label_issues(lists, probe.oof_proba_)).tolist())
    assert np.all(np.diff(found.quality) >= 0)
    # For most caught errors the suggested set is the true one; every flagged item doubts some class.
    caught = np.isin(found.positions, flipped)
    assert (found.suggested[caught] == Y[found.positions[caught]].astype(bool)).all(axis=1).mean() >= 0.8
    assert found.doubted.any(axis=1).all() and (found.given == noisy[found.positions].astype(bool)).all()
    assert found.n_flagged.sum() >= len(found.positions) and found.n_labels.tolist() == noisy.sum(axis=0).tolist()
    assert (found.precision > 0.85).all() and (found.recall > 0.85).all()


def test_clean_labels_are_rarely_flagged():
    X, Y = tagged_clusters(seed=3)
    probe = LinearProbe(multi_label=True, n_folds=5).fit(X, Y)
    found = find_multilabel_issues(Y, probe.oof_proba_)
    assert len(found.positions) <= 0.03 * len(Y)


def test_suggested_sets_take_every_likely_class_or_else_the_top_one():
    proba = np.array([[0.9, 0.6, 0.1], [0.2, 0.4, 0.3], [0.5, 0.1, 0.1]])
    assert suggested_sets(proba).tolist() == [[True, True, False], [False, True, False], [True, False, False]]


def test_too_few_labels_one_class_or_constant_columns_give_no_crash():
    proba = np.full((12, 3), 0.5)
    one_class = np.zeros((12, 3), int)
    one_class[:, 0] = 1
    assert len(find_multilabel_issues(one_class, proba).positions) == 0
    few = np.eye(3, dtype=int)[np.arange(9) % 3]
    assert len(find_multilabel_issues(few, np.full((9, 3), 0.5)).positions) == 0
    assert find_multilabel_issues(
        few, np.full((9, 3), 0.5), config=LabelIssueConfig(min_labels=5)
    ).n_labels.tolist() == [3, 3, 3]
    # One class on every item, one on half: cleanlab's multi-label functions need two columns;
    # the one that varies is checked on its own.
    given = np.c_[np.ones(40, int), np.r_[np.ones(20, int), np.zeros(20, int)]]
    proba = np.c_[np.ones(40), np.r_[np.full(19, 0.9), 0.05, np.full(19, 0.1), 0.95]]
    found = find_multilabel_issues(given, proba)
    assert sorted(found.positions.tolist()) == [19, 39] and not found.doubted[:, 0].any()
    with pytest.raises(ValueError, match="same shape"):
        find_multilabel_issues(given, proba[:, :1])


# ----- through the service layer and the page, on the small sample project ----------------


def planted_set_errors(engine):
    """Path -> wrong class set: an extra class on one image, a wrong class on another, both on a third."""
    first = {name: sorted(p for p in engine.pool.paths if p.startswith(f"{name}/")) for name in CLASSES}
    return {first["airplane"][0]: ["airplane", "truck"], first["frog"][0]: ["cat"], first["cat"][1]: ["cat", "frog"]}


def label_sets(engine, wrong=None, limit=None):
    """Label the asked images with their true class, or the set ``wrong`` gives; ``limit`` images at most."""
    wrong = wrong or {}
    session = LabelingSession(engine, "ann")
    done = 0
    while (limit is None or done < limit) and (ask := session.current()) is not None:
        session.label(ask.item_id, [class_id(engine, name) for name in wrong.get(ask.path, [true_class(ask.path)])])
        done += 1
    session.close()


def assert_review(engine, item_id, class_ids, supersedes_id):
    label = engine.current_label(item_id)
    assert label.class_ids == tuple(sorted(class_ids))
    with engine.db.reading() as session:
        row = session.get(Annotation, label.annotation_id)
        assert row.source is AnnotationSource.REVIEW and row.supersedes_id == supersedes_id


@pytest.mark.slow
def test_queue_flags_a_planted_set_and_set_reviews_supersede(engine):
    engine = multi_label_engine(engine)
    wrong = planted_set_errors(engine)
    label_sets(engine, wrong)
    with pytest.raises(UserError, match="multi_label_issue_queue"):
        label_issue_queue(engine)

    queue = multi_label_issue_queue(engine)
    assert queue.enough_labels and queue.n_labeled == 24
    # 6 each, plus truck on an airplane, cat on a frog (which loses frog) and frog on a cat.
    assert [c.n_labels for c in queue.classes] == [6, 7, 6, 7]
    flagged = [issue.path for issue in queue.issues]
    print("flagged:", flagged)
    # 24 labels of weak 32-pixel features: the synthetic tests measure precision; here the worst
    # set must be a planted one, with a suggestion that differs from it.
    first = queue.issues[0]
    assert first.path in wrong and first.differing and set(first.probability) == {c.class_id for c in queue.classes}
    assert sum(c.n_flagged for c in queue.classes) >= len(queue.issues)

    truth = (class_id(engine, true_class(first.path)),)
    annotation_id = review_label_set(engine, first, class_ids=truth, reviewer="rev")
    assert_review(engine, first.item_id, truth, first.annotation_id)
    assert engine.current_label(first.item_id).annotation_id == annotation_id
    with pytest.raises(UserError, match="labeled again"):
        review_label_set(engine, first, class_ids=first.given, reviewer="rev")
    with pytest.raises(UserError, match="at least one class"):
        review_label_set(engine, queue.issues[1], class_ids=(), reviewer="rev")
    # A reviewed item leaves the queue.
    assert first.item_id not in {issue.item_id for issue in multi_label_issue_queue(engine).issues}


@pytest.mark.slow
def test_page_keeps_accepts_and_saves_a_chosen_set_from_the_keyboard(engine):
    engine = multi_label_engine(engine)
    label_sets(engine, planted_set_errors(engine))
    app = open_page("pages/label_issues.py", role=Role.REVIEWER)
    keys = shortcuts(app)
    assert keys["enter"].startswith("Keep") and keys["l"].startswith("Accept") and keys["s"] == "Skip"
    assert keys["ctrl+enter"] == "Save these classes" and tuple(keys[str(n)] for n in range(1, 5)) == CLASSES
    assert len(app.dataframe) == 1 and len(app.dataframe[0].value) == len(CLASSES)
    total = len(multi_label_issue_queue(engine).issues)
    assert total >= 3
    reviewed = []

    def shown():
        path = app.text[0].value
        item = int(engine.pool.item_ids[engine.pool.paths.index(path)])
        assert item not in reviewed  # a reviewed item never comes back
        return item, engine.current_label(item)

    item, before = shown()  # Enter keeps the given set
    next(b for b in app.button if b.proto.shortcut == "enter").click().run()
    assert not app.exception
    assert_review(engine, item, before.class_ids, before.annotation_id)
    reviewed.append(item)

    item, before = shown()  # L accepts the suggested set
    accept = next(b for b in app.button if b.proto.shortcut == "l")
    assert not accept.disabled
    suggested = next(i for i in multi_label_issue_queue(engine).issues if i.item_id == item).suggested
    assert suggested != before.class_ids
    accept.click().run()
    assert not app.exception
    assert_review(engine, item, suggested, before.annotation_id)
    reviewed.append(item)

    item, before = shown()  # any set: number keys toggle classes from the given set, Ctrl+Enter saves
    chosen = [class_id(engine, "cat"), class_id(engine, "truck")]
    keys = {c.id: str(number % 10) for number, c in enumerate(engine.active_classes(), start=1)}
    for toggled in set(chosen) ^ set(before.class_ids):
        next(b for b in app.button if b.proto.shortcut == keys[toggled]).click().run()
    assert {b.label for b in app.button if b.proto.shortcut in keys.values() and b.proto.type == "primary"} == {
        "cat",
        "truck",
    }
    next(b for b in app.button if b.label == "Save these classes").click().run()
    assert not app.exception
    assert_review(engine, item, chosen, before.annotation_id)
    reviewed.append(item)

    if total > 3:
        shown()
        assert app.subheader[0].value == f"4 of {total}"
    next(b for b in app.button if b.label == "Recompute").click().run()
    assert not app.exception
    remaining = multi_label_issue_queue(engine).issues
    assert not {i.item_id for i in remaining} & set(reviewed)
    assert app.subheader[0].value == f"1 of {len(remaining)}"


@pytest.mark.slow
def test_page_says_how_many_labels_are_needed(engine):
    engine = multi_label_engine(engine)
    label_sets(engine, limit=5)
    app = open_page("pages/label_issues.py", role=Role.REVIEWER)
    assert not app.exception
    message = app.info[0].value
    assert "at least 10 labeled images" in message and "has 5 labeled images" in message
    assert not shortcuts(app).get("enter")
