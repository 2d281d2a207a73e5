"""Figures for the dashboard: labels per class, progress, learning curve, model versions, pace."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.quality.audit import LearningCurve, StopHint, learning_curve, stop_hint
from services.database import Database
from services.projects import get_project
from storage import queries
from storage.labels import label_queries
from storage.models import AnnotationSource


@dataclass(frozen=True)
class ModelRow:
    id: int
    created_at: datetime
    n_labels: int
    oof_accuracy: float | None
    fit_seconds: float | None


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows, read in one short session.

    ``per_minute`` maps each annotator to (minute, labels given in it) pairs, oldest first.
    ``curve`` is None until an audit ask has been answered.
    """

    n_items: int
    n_labeled: int
    class_counts: dict[str, int]
    curve: LearningCurve | None
    stop: StopHint | None
    models: list[ModelRow]
    per_minute: dict[str, list[tuple[datetime, int]]]


def dashboard(db: Database, project_name: str) -> Dashboard:
    project = get_project(db, project_name)
    with db.reading() as session:
        n_items = queries.item_counts(session, project.id).ok
        current = label_queries.current_labels(session, project.id)
        classes = {c.id: c.name for c in label_queries.label_classes(session, project.id, include_archived=True)}
        versions = label_queries.model_versions(session, project.id)
        events = label_queries.annotation_events(session, project.id)
        audits = label_queries.audit_picks(session, project.id)
    counts = Counter(classes[c] for label in current.values() for c in label.class_ids)
    labeled = sum(1 for label in current.values() if label.class_ids)
    trained_on = {v.id: v.n_labels for v in versions}
    curve, stop = _learning_curve(audits, events, trained_on)
    models = [
        ModelRow(v.id, v.created_at, v.n_labels, v.metrics.get("oof_accuracy"), v.metrics.get("fit_seconds"))
        for v in versions
    ]
    return Dashboard(
        n_items=n_items,
        n_labeled=labeled,
        class_counts={name: counts.get(name, 0) for name in classes.values()},
        curve=curve,
        stop=stop,
        models=models,
        per_minute=_per_minute(events),
    )


def _learning_curve(audits, events, trained_on) -> tuple[LearningCurve | None, StopHint | None]:
    """Score each answered audit ask: the newest human answer since the ask that was not undone
    (corrections count) against the prediction made at ask time."""
    undone = {event.supersedes_id for event in events if event.source is AnnotationSource.UNDO}
    answers: dict[int, list[label_queries.AnnotationEvent]] = defaultdict(list)
    for event in events:
        if event.source is AnnotationSource.HUMAN and event.class_ids and event.annotation_id not in undone:
            answers[event.item_id].append(event)
    version, n_labels, correct = [], [], []
    for audit in audits:
        if audit.model_version_id is None:
            continue
        answer = next((e for e in reversed(answers.get(audit.item_id, [])) if e.created_at >= audit.asked_at), None)
        if answer is None:
            continue
        version.append(audit.model_version_id)
        n_labels.append(trained_on.get(audit.model_version_id, 0))
        correct.append(set(answer.class_ids) == set(audit.predicted))
    if not correct:
        return None, None
    return learning_curve(version, n_labels, correct), stop_hint(n_labels, correct)


def _per_minute(events) -> dict[str, list[tuple[datetime, int]]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for event in events:
        if event.source is AnnotationSource.HUMAN and event.class_ids and event.annotator:
            counts[event.annotator][event.created_at.replace(second=0, microsecond=0)] += 1
    return {name: sorted(per.items()) for name, per in sorted(counts.items())}


def labels_per_minute(per_minute: list[tuple[datetime, int]]) -> float:
    """Mean labels per active minute (minutes with at least one label)."""
    return float(np.mean([count for _, count in per_minute])) if per_minute else 0.0
