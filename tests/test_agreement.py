"""Agreement measures on planted labels, against values worked out by hand (formulas in the comments)."""

import math

import pytest

from services.projects import get_project
from services.teams.agreement import measure, project_agreement
from tests.labels_by_name import record_annotation
from tests.team_project import class_ids_by_name, team_engine

# Items 1..6 labeled by A and B with classes 1, 2, 3; C labels item 4 only.
A = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}
B = {1: 1, 2: 1, 3: 2, 4: 3, 5: 3, 6: 3}
C = {4: 2}


def planted(with_c: bool = True):
    labels = {item: {"A": (A[item],), "B": (B[item],)} for item in A}
    if with_c:
        for item, label in C.items():
            labels[item]["C"] = (label,)
    labels[7] = {"A": (1,)}  # one annotator only: not an overlap item
    return labels


def test_cohens_kappa_and_krippendorffs_alpha_of_two_annotators_match_the_hand_computation():
    result = measure(planted(with_c=False))
    assert result.n_items == 6
    (pair,) = result.pairs
    # Observed agreement 5/6; A's marginals 2,2,2 and B's 2,1,3 of 6: chance (4+2+6)/36 = 1/3.
    assert (pair.first, pair.second, pair.n_items) == ("A", "B", 6)
    assert pair.percent == pytest.approx(5 / 6)
    assert pair.kappa == pytest.approx((5 / 6 - 1 / 3) / (1 - 1 / 3))  # 0.75
    # Nominal alpha: 12 values (class counts 4, 3, 5), one disagreeing pair both ways:
    # 1 - (n - 1) * 2 / (n^2 - sum n_c^2) = 1 - 11 * 2 / (144 - 50).
    assert result.alpha == pytest.approx(1 - 22 / 94)
    # One vs rest: class 1 is never disputed; class 2: counts 3 vs 9 -> 1 - 11*2/(2*3*9);
    # class 3: counts 5 vs 7 -> 1 - 11*2/(2*5*7).
    assert result.alpha_per_class == pytest.approx({1: 1.0, 2: 1 - 22 / 54, 3: 1 - 22 / 70})


def test_a_third_annotator_on_one_item_counts_with_missing_values_and_in_each_annotators_agreement():
    result = measure(planted())
    # Item 4 has three values (2, 3, 2): each ordered pair weighs 1/(3-1), giving o22=1, o23=o32=1.
    # Class totals 4, 4, 5 of n=13; disagreement 2: alpha = 1 - 12 * 2 / (169 - 57).
    assert result.alpha == pytest.approx(1 - 24 / 112)
    pairs = {(p.first, p.second): p for p in result.pairs}
    assert pairs["A", "C"].n_items == 1 and pairs["A", "C"].percent == 1.0 and math.isnan(pairs["A", "C"].kappa)
    assert pairs["B", "C"].percent == 0.0
    by_name = {a.annotator: a for a in result.annotators}
    # A against the others: 7 pairs (6 with B, 1 with C), 6 agree. A's labels 1,1,2,2,3,3,2 have
    # marginals 2,3,2; the others' 1,1,2,3,3,3,2 have 2,2,3: chance (4+6+6)/49 = 16/49.
    assert by_name["A"].n_items == 6 and by_name["A"].percent == pytest.approx(6 / 7)
    assert by_name["A"].kappa == pytest.approx((6 / 7 - 16 / 49) / (1 - 16 / 49))
    assert by_name["C"].n_items == 1 and by_name["C"].percent == pytest.approx(1 / 2)


def test_undefined_measures_are_nan():
    result = measure({1: {"A": (1,), "B": (1,)}})
    assert math.isnan(result.alpha) and math.isnan(result.pairs[0].kappa)
    assert measure({}).n_items == 0


@pytest.mark.slow
def test_the_projects_agreement_is_measured_on_each_annotators_newest_label(backend_db, backend_settings, tmp_path):
    engine = team_engine(backend_db, backend_settings, tmp_path, per_class=2)
    try:
        classes = sorted(class_ids_by_name(engine))  # airplane, cat, frog, truck
        items = engine.pool.item_ids.tolist()[:7]
        name = dict(zip((1, 2, 3), classes))
        for who, labels in (("A", A), ("B", B), ("C", C)):
            for number, label in labels.items():
                record_annotation(backend_db, item_id=items[number - 1], class_names=[name[label]], annotator=who)
        # B first said something else about item 1, then corrected it: only the newest counts.
        first = record_annotation(backend_db, item_id=items[0], class_names=[name[3]], annotator="B")
        record_annotation(backend_db, item_id=items[0], class_names=[name[1]], annotator="B", supersedes_id=first)
        record_annotation(backend_db, item_id=items[6], class_names=[name[1]], annotator="A")

        result = project_agreement(backend_db, get_project(backend_db, "default").name)
        by_id = class_ids_by_name(engine)
        expected = measure(
            {
                items[i - 1]: {who: (by_id[name[label[0]]],) for who, label in by.items()}
                for i, by in planted().items()
                if i <= 6
            }
        )
        assert result.n_items == 6
        assert result.alpha == pytest.approx(1 - 24 / 112) == expected.alpha
        assert result.alpha_per_class == pytest.approx(expected.alpha_per_class)
    finally:
        engine.close()
