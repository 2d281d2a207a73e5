"""The label-issue review queue: out-of-fold probabilities -> cleanlab -> keep or relabel.

The labeled items of a project engine are fit with a fresh :class:`core.probe.LinearProbe`
whose out-of-fold probabilities (each item's from a fit without it) go to cleanlab's
label-issue finder (``core.label_issues``). Items whose current label a reviewer already
gave or confirmed (an annotation with source ``review``) stay out of the queue. Keeping a
label or relabeling writes a ``review`` annotation superseding the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.label_issues import LabelIssueConfig, find_issues
from core.probe import LinearProbe
from services.errors import UserError
from services.labels import record_annotation
from storage import label_issue_queries
from storage.label_queries import CurrentLabel
from storage.models import AnnotationSource

if TYPE_CHECKING:
    from services.engine import ProjectEngine


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


@dataclass(frozen=True)
class LabelIssueQueue:
    """The queue, most suspicious first, and the per-class confusion of every labeled item.

    ``confusion[i, j]`` counts labeled items given class ``class_ids[i]`` whose out-of-fold
    prediction is ``class_ids[j]``.
    """

    issues: list[LabelIssue]
    class_ids: list[int]
    confusion: np.ndarray
    n_labeled: int
    n_flagged: int  # issues found, before leaving out the ones already reviewed


def label_issue_queue(engine: ProjectEngine, *, config: LabelIssueConfig = LabelIssueConfig(),
                      n_folds: int = 5, random_state: int = 0) -> LabelIssueQueue:
    """Compute the review queue from the engine's current labels.

    Raises
    ------
    UserError
        On a multi-label project (not supported yet).
    """
    if engine.multi_label:
        raise UserError("the label-issue queue supports single-label projects only")
    current = {item: engine.current_label(item) for item in engine.labeled_items()}
    current = {item: label for item, label in current.items() if label is not None and label.class_ids}  # not cleared meanwhile
    items = np.asarray(sorted(current), np.int64)
    given = np.asarray([current[i].class_ids[0] for i in items.tolist()], np.int64)
    class_ids = np.unique(given)
    if len(items) < max(config.min_labels, 2) or len(class_ids) < 2:
        return LabelIssueQueue([], class_ids.tolist(), np.zeros((len(class_ids),) * 2, np.int64), len(items), 0)
    rows = np.asarray([engine.row_of[i] for i in items.tolist()], np.int64)
    probe = LinearProbe(n_folds=n_folds, random_state=random_state).fit(engine.embeddings[rows], given)
    columns = np.searchsorted(probe.classes_, given)
    found = find_issues(columns, probe.oof_proba_, config=config)
    with engine.db.reading() as session:
        reviewed = label_issue_queries.review_annotation_ids(session, [current[i].annotation_id for i in items[found.positions].tolist()])
    issues = [LabelIssue(item_id=int(items[p]), path=engine.paths[rows[p]], annotation_id=current[int(items[p])].annotation_id,
                         given=int(probe.classes_[g]), suggested=int(probe.classes_[s]), self_confidence=float(c))
              for p, g, s, c in zip(found.positions.tolist(), found.given.tolist(), found.suggested.tolist(),
                                    found.self_confidence.tolist())
              if current[int(items[p])].annotation_id not in reviewed]
    return LabelIssueQueue(issues, [int(c) for c in probe.classes_], found.confusion, len(items), len(found.positions))


def review_label(engine: ProjectEngine, issue: LabelIssue, *, class_id: int, reviewer: str) -> int:
    """Record the reviewer's verdict on an issue: ``class_id`` (the given class keeps the label,
    another relabels it) as a ``review`` annotation superseding the current one; returns its id.

    Raises
    ------
    UserError
        When the item's label changed since the queue was computed, or the class is unknown.
    """
    now = engine.current_label(issue.item_id)
    if now is None or now.annotation_id != issue.annotation_id:
        raise UserError(f"{issue.path} was labeled again since this queue was made; refresh the queue")
    if class_id not in engine.classes:
        raise UserError(f"unknown class id {class_id}")
    annotation_id = record_annotation(engine.db, item_id=issue.item_id, class_names=[engine.classes[class_id].name],
                                      annotator=reviewer, source=AnnotationSource.REVIEW,
                                      supersedes_id=issue.annotation_id)
    engine.set_label(issue.item_id, CurrentLabel(annotation_id, (class_id,)))
    return annotation_id
