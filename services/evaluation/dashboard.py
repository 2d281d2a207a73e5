"""Figures for the dashboard: labels per class, progress, learning curve, model versions, pace."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.quality.audit import AccuracyEstimate, LearningCurve, StopHint, accuracy_estimate, learning_curve, stop_hint
from services import shared_settings
from services.database import Database
from services.engine.project_engine import selection_settings
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
    ``curve`` is None until an audit ask has been answered; ``stop`` too, unless a model serves.
    ``estimate`` (None before the first model) is the newest model's accuracy from the audit
    answers to recent models and its out-of-fold accuracy together (see
    :func:`core.quality.audit.accuracy_estimate`).
    """

    n_items: int
    n_labeled: int
    class_counts: dict[str, int]
    curve: LearningCurve | None
    stop: StopHint | None
    estimate: AccuracyEstimate | None
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
    audit_share = selection_settings(
        shared_settings.read_setting(db, project.id, shared_settings.SELECTION)
    ).config.audit_share
    counts = Counter(classes[c] for label in current.values() for c in label.class_ids)
    labeled = sum(1 for label in current.values() if label.class_ids)
    trained_on = {v.id: v.n_labels for v in versions}
    scored = _scored_audits(audits, events, trained_on)
    curve = learning_curve(*zip(*scored)) if scored else None
    n_labels, correct = [s[1] for s in scored], [s[2] for s in scored]
    stop = stop_hint(n_labels, correct, audit_share=audit_share) if scored or versions else None
    estimate = None
    if versions:
        newest = versions[-1]
        # Audit answers to models trained on most of the newest one's labels speak for it.
        recent = [right for n, right in zip(n_labels, correct) if n >= 0.8 * newest.n_labels]
        # Out-of-fold fits finish after their model serves and are stored with the next version.
        measured = next((v.metrics for v in reversed(versions) if v.metrics.get("oof_accuracy") is not None), {})
        estimate = accuracy_estimate(recent, measured.get("oof_accuracy"), int(measured.get("oof_labels", 0)))
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
        estimate=estimate,
        models=models,
        per_minute=_per_minute(events),
    )


def _scored_audits(audits, events, trained_on) -> list[tuple[int, int, bool]]:
    """Score each answered audit ask: the newest human answer since the ask that was not undone
    (corrections count) against the prediction made at ask time. Returns (model version, labels
    it was trained on, right) per answered audit, in ask order."""
    undone = {event.supersedes_id for event in events if event.source is AnnotationSource.UNDO}
    answers: dict[int, list[label_queries.AnnotationEvent]] = defaultdict(list)
    for event in events:
        if event.source is AnnotationSource.HUMAN and event.class_ids and event.annotation_id not in undone:
            answers[event.item_id].append(event)
    scored = []
    for audit in audits:
        if audit.model_version_id is None:
            continue
        answer = next((e for e in reversed(answers.get(audit.item_id, [])) if e.created_at >= audit.asked_at), None)
        if answer is None:
            continue
        right = set(answer.class_ids) == set(audit.predicted)
        scored.append((audit.model_version_id, trained_on.get(audit.model_version_id, 0), right))
    return scored


def _per_minute(events) -> dict[str, list[tuple[datetime, int]]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for event in events:
        if event.source is AnnotationSource.HUMAN and event.class_ids and event.annotator:
            counts[event.annotator][event.created_at.replace(second=0, microsecond=0)] += 1
    return {name: sorted(per.items()) for name, per in sorted(counts.items())}


def labels_per_minute(per_minute: list[tuple[datetime, int]]) -> float:
    """Mean labels per active minute (minutes with at least one label)."""
    return float(np.mean([count for _, count in per_minute])) if per_minute else 0.0
