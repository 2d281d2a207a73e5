"""The label-issue review queue: out-of-fold probabilities -> cleanlab -> keep or relabel.

The labeled items of a project engine are fit with a fresh :class:`core.model.probe.LinearProbe`
whose out-of-fold probabilities (each item's from a fit without it) go to cleanlab's
label-issue finder (``core.quality.label_issues``), which flags only on strong evidence and
flags nothing, with a warning, when the model is too weak for flags to mean much. Items whose current label a reviewer already
gave or confirmed (an annotation with source ``review``) stay out of the queue. Keeping a
label or relabeling writes a ``review`` annotation superseding the current one.

Multi-label projects (:func:`multi_label_issue_queue`): the probe is one-vs-rest over the
classes in use, cleanlab's multi-label finder flags class sets, and a verdict is a class set
(:func:`review_label_set`), written the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.model.probe import LinearProbe
from core.quality.label_issues import LabelIssueConfig, find_issues, find_multilabel_issues
from services.errors import UserError
from services.labeling.write import LabelWrite, write_labels
from storage.labels import label_issue_queries
from storage.labels.label_queries import CurrentLabel
from storage.models import AnnotationSource

if TYPE_CHECKING:
    from core.features.extract import ExtractConfig
    from services.config import Settings
    from services.database import Database
    from services.engine.project_engine import ProjectEngine


@dataclass(frozen=True)
class LabelIssue:
    """A labeled item whose label is probably wrong.

    ``annotation_id`` is the current annotation the queue was computed from; a review
    of the item is refused once it is no longer current.
    """

    item_id: int
    path: str
    annotation_id: int
    given: int  # class id
    suggested: int  # class id, the out-of-fold argmax
    self_confidence: float  # out-of-fold probability of the given class

    @property
    def confidence(self) -> float:
        """How sure the out-of-fold model is that the given label is wrong: 1 - self-confidence."""
        return 1.0 - self.self_confidence


@dataclass(frozen=True)
class LabelIssueQueue:
    """The queue, most suspicious first, and the per-class confusion of every labeled item.

    ``confusion[i, j]`` counts labeled items given class ``class_ids[i]`` whose out-of-fold
    prediction is ``class_ids[j]``. ``accuracy`` is the out-of-fold accuracy against the given
    labels and ``chance`` that of always answering the most frequent one (NaN without a model);
    ``warning`` says why nothing was flagged when the evidence cannot be strong (else None).
    """

    issues: list[LabelIssue]
    class_ids: list[int]
    confusion: np.ndarray
    n_labeled: int
    n_flagged: int  # issues found, before leaving out the ones already reviewed
    accuracy: float = float("nan")
    chance: float = float("nan")
    warning: str | None = None


DEFAULT_CONFIG = LabelIssueConfig()  # the app's and the CLI's; tests of the pages may swap it


def label_issue_queue(
    engine: ProjectEngine, *, config: LabelIssueConfig | None = None, n_folds: int = 5, random_state: int = 0
) -> LabelIssueQueue:
    """Compute the review queue from the engine's current labels (``config`` default: ``DEFAULT_CONFIG``).

    Raises
    ------
    UserError
        On a multi-label project (see :func:`multi_label_issue_queue`).
    """
    if engine.multi_label:
        raise UserError("this is the single-label queue; a multi-label project has multi_label_issue_queue")
    config = DEFAULT_CONFIG if config is None else config
    current = _current_labels(engine)
    items = np.asarray(sorted(current), np.int64)
    given = np.asarray([current[i].class_ids[0] for i in items.tolist()], np.int64)
    class_ids = np.unique(given)
    if len(items) < max(config.min_labels, 2) or len(class_ids) < 2:
        nothing = find_issues(np.searchsorted(class_ids, given), np.zeros((len(given), len(class_ids))), config=config)
        return LabelIssueQueue(
            [], class_ids.tolist(), np.zeros((len(class_ids),) * 2, np.int64), len(items), 0, warning=nothing.warning
        )
    rows = np.asarray([engine.pool.row_of[i] for i in items.tolist()], np.int64)
    probe = LinearProbe(n_folds=n_folds, random_state=random_state).fit(engine.pool.embeddings[rows], given)
    columns = np.searchsorted(probe.classes_, given)
    found = find_issues(columns, probe.oof_proba_, config=config)
    with engine.db.reading() as session:
        reviewed = label_issue_queries.review_annotation_ids(
            session, [current[i].annotation_id for i in items[found.positions].tolist()]
        )
    issues = [
        LabelIssue(
            item_id=int(items[p]),
            path=engine.pool.paths[rows[p]],
            annotation_id=current[int(items[p])].annotation_id,
            given=int(probe.classes_[g]),
            suggested=int(probe.classes_[s]),
            self_confidence=float(c),
        )
        for p, g, s, c in zip(
            found.positions.tolist(), found.given.tolist(), found.suggested.tolist(), found.self_confidence.tolist()
        )
        if current[int(items[p])].annotation_id not in reviewed
    ]
    return LabelIssueQueue(
        issues,
        [int(c) for c in probe.classes_],
        found.confusion,
        len(items),
        len(found.positions),
        found.accuracy,
        found.chance,
        found.warning,
    )


def _current_labels(engine: ProjectEngine) -> dict[int, CurrentLabel]:
    """The engine's current labels that name a class (a label cleared meanwhile is left out)."""
    current = {item: engine.current_label(item) for item in engine.labeled_items()}
    return {item: label for item, label in current.items() if label is not None and label.class_ids}


def review_label(engine: ProjectEngine, issue: LabelIssue, *, class_id: int, reviewer: str) -> int:
    """Record the reviewer's verdict on an issue: ``class_id`` (the given class keeps the label,
    another relabels it) as a ``review`` annotation superseding the current one; returns its id.

    Raises
    ------
    UserError
        When the item's label changed since the queue was computed, or the class is unknown.
    """
    return _record_review(engine, issue, (class_id,), reviewer)


def _record_review(
    engine: ProjectEngine, issue: LabelIssue | MultiLabelIssue, class_ids: tuple[int, ...], reviewer: str
) -> int:
    now = engine.current_label(issue.item_id)
    if now is None or now.annotation_id != issue.annotation_id:
        raise UserError(f"{issue.path} was labeled again since this queue was made; refresh the queue")
    return write_labels(
        engine.db,
        project_id=engine.project_id,
        annotator=reviewer,
        source=AnnotationSource.REVIEW,
        labels=[LabelWrite(issue.item_id, tuple(class_ids), issue.annotation_id)],
    )[0]


# ----- multi-label -----------------------------------------------------------------------


@dataclass(frozen=True)
class MultiLabelIssue:
    """A labeled item whose class set is probably wrong.

    ``annotation_id`` is the current annotation the queue was computed from; a review
    of the item is refused once it is no longer current.
    """

    item_id: int
    path: str
    annotation_id: int
    given: tuple[int, ...]  # class ids, sorted
    suggested: tuple[int, ...]  # class ids with out-of-fold probability >= 0.5 (else the top one), sorted
    doubted: tuple[int, ...]  # class ids cleanlab's one-vs-rest check flagged
    quality: float  # cleanlab's label-quality score of the given set, 0..1, lower is worse
    probability: dict[int, float]  # out-of-fold probability per class id in use

    @property
    def differing(self) -> tuple[int, ...]:
        """Class ids in exactly one of the given and the suggested set, sorted."""
        return tuple(sorted(set(self.given) ^ set(self.suggested)))


@dataclass(frozen=True)
class ClassIssueStats:
    """One class of a multi-label queue: its labels, flagged images doubting it, and the
    out-of-fold precision and recall of the suggested sets for it (NaN where undefined)."""

    class_id: int
    n_labels: int
    n_flagged: int
    precision: float
    recall: float


@dataclass(frozen=True)
class MultiLabelIssueQueue:
    """The multi-label queue, worst label quality first, and per-class figures of every label.

    ``enough_labels`` is False when there are fewer than ``min_labels`` labeled images or fewer
    than two classes in use: then there is no queue.
    """

    issues: list[MultiLabelIssue]
    classes: list[ClassIssueStats]
    n_labeled: int
    n_flagged: int  # issues found, before leaving out the ones already reviewed
    min_labels: int
    enough_labels: bool


def multi_label_issue_queue(
    engine: ProjectEngine, *, config: LabelIssueConfig = LabelIssueConfig(), n_folds: int = 5, random_state: int = 0
) -> MultiLabelIssueQueue:
    """Compute the review queue of a multi-label project from the engine's current labels.

    A one-vs-rest probe over the classes in use is fit with out-of-fold probabilities on every
    labeled image; ``core.quality.label_issues.find_multilabel_issues`` flags and ranks.

    Raises
    ------
    UserError
        On a single-label project (see :func:`label_issue_queue`).
    """
    if not engine.multi_label:
        raise UserError("this is the multi-label queue; a single-label project has label_issue_queue")
    current = _current_labels(engine)
    items = np.asarray(sorted(current), np.int64)
    class_ids = np.asarray(sorted({c for label in current.values() for c in label.class_ids}), np.int64)
    given = np.zeros((len(items), len(class_ids)), np.int8)
    for row, item in enumerate(items.tolist()):
        given[row, np.searchsorted(class_ids, current[item].class_ids)] = 1
    min_labels = max(config.min_labels, 2)
    if len(items) < min_labels or len(class_ids) < 2:
        stats = [
            ClassIssueStats(int(c), int(n), 0, float("nan"), float("nan"))
            for c, n in zip(class_ids.tolist(), given.sum(axis=0).tolist())
        ]
        return MultiLabelIssueQueue([], stats, len(items), 0, min_labels, False)
    rows = np.asarray([engine.pool.row_of[i] for i in items.tolist()], np.int64)
    probe = LinearProbe(multi_label=True, n_folds=n_folds, random_state=random_state).fit(
        engine.pool.embeddings[rows], given, classes=class_ids
    )
    found = find_multilabel_issues(given, probe.oof_proba_, config=config)
    with engine.db.reading() as session:
        reviewed = label_issue_queries.review_annotation_ids(
            session, [current[i].annotation_id for i in items[found.positions].tolist()]
        )

    def ids(mask: np.ndarray) -> tuple[int, ...]:
        return tuple(int(c) for c in class_ids[mask])

    issues = [
        MultiLabelIssue(
            item_id=int(items[p]),
            path=engine.pool.paths[rows[p]],
            annotation_id=current[int(items[p])].annotation_id,
            given=ids(found.given[q]),
            suggested=ids(found.suggested[q]),
            doubted=ids(found.doubted[q]),
            quality=float(found.quality[q]),
            probability=dict(zip(class_ids.tolist(), probe.oof_proba_[p].astype(float).tolist())),
        )
        for q, p in enumerate(found.positions.tolist())
        if current[int(items[p])].annotation_id not in reviewed
    ]
    stats = [
        ClassIssueStats(int(c), int(n), int(f), float(pr), float(re))
        for c, n, f, pr, re in zip(
            class_ids.tolist(),
            found.n_labels.tolist(),
            found.n_flagged.tolist(),
            found.precision.tolist(),
            found.recall.tolist(),
        )
    ]
    return MultiLabelIssueQueue(issues, stats, len(items), len(found.positions), min_labels, True)


def review_label_set(engine: ProjectEngine, issue: MultiLabelIssue, *, class_ids: Iterable[int], reviewer: str) -> int:
    """Record the reviewer's verdict on a multi-label issue: the item's whole class set (the given
    set keeps the label, another relabels it) as a ``review`` annotation superseding the current
    one; returns its id.

    Raises
    ------
    UserError
        When the item's label changed since the queue was computed, the set is empty, or a
        class is unknown (or archived).
    """
    chosen = tuple(sorted({int(c) for c in class_ids}))
    if not chosen:
        raise UserError("choose at least one class")
    return _record_review(engine, issue, chosen, reviewer)


# ----- headless (the label-issues command) ------------------------------------------------

CSV_COLUMNS = ("path", "given", "suggested", "confidence")


def headless_label_issues(
    db: Database,
    settings: Settings,
    *,
    project: str,
    extract: ExtractConfig | None = None,
    wait_seconds: float = 0.0,
    on_wait: Callable[[Path], None] | None = None,
) -> tuple[LabelIssueQueue, dict[int, str]]:
    """The single-label review queue of ``project`` outside the app, and its class names by id.

    Images not embedded yet are embedded first (as ``select`` does). Reviews already given in
    the app leave their items out, as on the page.

    Raises
    ------
    UserError
        An unknown project, no images, or a multi-label project.
    """
    from core.features.extract import ExtractConfig
    from services.engine.lifecycle import build_engine
    from services.features.embeddings import embed
    from services.projects import get_project

    found = get_project(db, project)
    embedded = embed(
        db,
        settings,
        project=project,
        config=extract or ExtractConfig(),
        wait_seconds=wait_seconds,
        on_wait=on_wait,
    )
    engine = build_engine(db, settings, found.name, embedded.folder)
    try:
        if engine.multi_label:
            raise UserError(
                "label-issues reads single-label projects; review a multi-label one on the Label issues page"
            )
        return label_issue_queue(engine), {int(c): engine.classes[c].name for c in engine.classes}
    finally:
        engine.close()


def issues_csv(queue: LabelIssueQueue, names: dict[int, str]) -> str:
    """The queue as CSV text: one row per flag, most suspicious first (``CSV_COLUMNS``)."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for issue in queue.issues:
        writer.writerow([issue.path, names[issue.given], names[issue.suggested], f"{issue.confidence:.4f}"])
    return text.getvalue()
