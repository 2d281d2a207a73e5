"""``label-issues``: the flagged labels as CSV; no flags and a reason when the evidence is weak."""

import csv

import pytest

from app.cli import main
from services.config import load_settings
from services.data_engine import label_issues as label_issue_service
from services.database import open_database
from services.projects import get_project
from storage.items import item_queries
from tests.labeling_project import CLASSES, true_class
from tests.labels_by_name import NewLabel, record_annotations
from tests.test_label_issues import MECHANICS

pytestmark = pytest.mark.slow


@pytest.fixture
def planted(labeling_home):
    """Every image labeled with its true class, but the first of two classes given the next class."""
    with open_database(load_settings()) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            items = sorted(item_queries.ok_item_paths(session, project.id), key=lambda pair: pair[1])
        wrong = {next(p for _, p in items if true_class(p) == name) for name in CLASSES[:2]}
        labels = [
            NewLabel(i, [CLASSES[(CLASSES.index(true_class(p)) + 1) % len(CLASSES)] if p in wrong else true_class(p)])
            for i, p in items
        ]
        record_annotations(db, labels, annotator="ann")
    return wrong


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_label_issues_writes_flags_with_given_suggested_and_confidence(planted, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(label_issue_service, "DEFAULT_CONFIG", MECHANICS)  # 24 labels: below the default gates
    out = tmp_path / "issues.csv"

    assert main(["label-issues", "--project", "default", "--out", str(out)]) == 0

    columns, rows = _read(out)
    assert columns == ["path", "given", "suggested", "confidence"]
    assert rows and rows[0]["path"] in planted
    assert rows[0]["suggested"] == true_class(rows[0]["path"]) and rows[0]["given"] != rows[0]["suggested"]
    confidence = [float(r["confidence"]) for r in rows]
    assert all(0 <= c <= 1 for c in confidence) and confidence == sorted(confidence, reverse=True)
    assert f"{len(rows)} of 24 labels flagged" in capsys.readouterr().out


def test_label_issues_flags_nothing_and_says_why_when_the_evidence_is_weak(planted, tmp_path, capsys):
    out = tmp_path / "issues.csv"

    assert main(["label-issues", "--out", str(out)]) == 0

    columns, rows = _read(out)
    assert columns == ["path", "given", "suggested", "confidence"] and rows == []
    printed = capsys.readouterr()
    assert "no labels flagged" in printed.err and "labels in every class" in printed.err
    assert printed.out.startswith("0 of 24 labels flagged")


def test_label_issues_of_an_unknown_project_fails_with_status_1(labeling_home, tmp_path, capsys):
    assert main(["label-issues", "--project", "nope", "--out", str(tmp_path / "x.csv")]) == 1
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_label_issues_needs_out(labeling_home):
    with pytest.raises(SystemExit) as exit_:
        main(["label-issues"])
    assert exit_.value.code == 2
