"""Agreement between annotators on the items two or more of them labeled (the overlap items).

Each annotator's label of an item is their newest human annotation of it that names a
class (see :func:`services.teams.review.newest_opinions`); a label is the item's whole class
set, so in a multi-label project two labels agree only when the sets are equal.

- Cohen's kappa per pair of annotators on the items both labeled
  (``sklearn.metrics.cohen_kappa_score``).
- Krippendorff's alpha (nominal, package ``krippendorff``) over all overlap items, and
  per class one-vs-rest: the class in the label or not.
- Per annotator: the share of their labels on overlap items that equal another
  annotator's label of the item, and Cohen's kappa of their labels against the others'
  pooled over those pairs.

A measure that is undefined (fewer than two items, or a single value seen) is NaN.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

from services.database import Database
from services.projects import get_project
from services.teams.review import newest_opinions
from storage.teams import review_queries

Labels = Mapping[int, Mapping[str, tuple[int, ...]]]  # item id -> annotator -> class ids


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    n_items: int
    percent: float
    kappa: float


@dataclass(frozen=True)
class AnnotatorAgreement:
    annotator: str
    n_items: int
    percent: float
    kappa: float


@dataclass(frozen=True)
class Agreement:
    """Agreement measures of a project; ``alpha_per_class`` maps class id -> alpha."""

    n_items: int
    alpha: float
    alpha_per_class: dict[int, float]
    pairs: list[PairAgreement]
    annotators: list[AnnotatorAgreement]


def _kappa(first: list, second: list) -> float:
    if len(first) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a single label seen: sklearn warns and returns NaN
        return float(cohen_kappa_score(first, second))


def _alpha(data: np.ndarray) -> float:
    """Nominal alpha of an annotators x items matrix with NaN where an annotator gave no label."""
    values = data[~np.isnan(data)]
    if data.shape[1] < 2 or len(np.unique(values)) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def measure(labels: Labels) -> Agreement:
    """Agreement measures of ``labels``; items with fewer than two annotators are left out.

    Parameters
    ----------
    labels : mapping of item id -> mapping of annotator name -> tuple of class ids

    Returns
    -------
    Agreement
    """
    shared = {item: dict(by) for item, by in labels.items() if len(by) >= 2}
    annotators = sorted({name for by in shared.values() for name in by})
    items = sorted(shared)
    sets = sorted({classes for by in shared.values() for classes in by.values()})
    code = {classes: i for i, classes in enumerate(sets)}
    data = np.full((len(annotators), len(items)), np.nan)
    for column, item in enumerate(items):
        for name, classes in shared[item].items():
            data[annotators.index(name), column] = code[classes]
    per_class = {}
    for class_id in sorted({c for classes in sets for c in classes}):
        has = np.asarray([class_id in classes for classes in sets], np.float64)
        coded = np.where(np.isnan(data), np.nan, has[np.nan_to_num(data).astype(int)])
        per_class[class_id] = _alpha(coded)
    pairs = []
    for first, second in itertools.combinations(annotators, 2):
        both = [item for item in items if first in shared[item] and second in shared[item]]
        if both:
            a = [code[shared[item][first]] for item in both]
            b = [code[shared[item][second]] for item in both]
            pairs.append(PairAgreement(first, second, len(both), float(np.mean(np.equal(a, b))), _kappa(a, b)))
    people = []
    for name in annotators:
        mine, theirs, n_items = [], [], 0
        for item in items:
            if name in shared[item]:
                n_items += 1
                for other, classes in shared[item].items():
                    if other != name:
                        mine.append(code[shared[item][name]])
                        theirs.append(code[classes])
        people.append(AnnotatorAgreement(name, n_items, float(np.mean(np.equal(mine, theirs))), _kappa(mine, theirs)))
    return Agreement(len(items), _alpha(data), per_class, pairs, people)


def project_agreement(db: Database, project_name: str) -> Agreement:
    """Agreement measures of the project's overlap items."""
    project = get_project(db, project_name)
    with db.reading() as session:
        opinions = review_queries.opinions(session, project_id=project.id, min_annotators=2)
    by_item: dict[int, list] = {}
    for opinion in opinions:
        by_item.setdefault(opinion.item_id, []).append(opinion)
    labels = {}
    for item, item_opinions in by_item.items():
        latest, _ = newest_opinions(item_opinions)
        labels[item] = {name: opinion.class_ids for name, opinion in latest.items()}
    return measure(labels)
