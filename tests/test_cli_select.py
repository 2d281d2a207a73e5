"""``select``: picks CSV with score parts, recorded as a selection run; clear errors."""

import csv
import json
import math

import pytest
from sqlalchemy import select

from app.cli import main
from app.commands import select as select_command
from core.features.backbones import identify_backbone
from core.selection.selection import ALL_STRATEGIES, PART_NAMES
from services.config import load_settings
from services.data_engine.headless_selection import CSV_COLUMNS
from services.database import open_database
from services.features.embeddings import embeddings_folder
from services.projects import get_project
from services.shared_settings import SELECTION, read_setting
from services.transfer.export import labeled_images
from storage.items import item_queries
from storage.models import ModelVersion, Pick, Project, SelectionRun
from tests.embedding_helpers import store_held_elsewhere
from tests.labeling_project import CLASSES, true_class
from tests.labels_by_name import NewLabel, record_annotations


@pytest.fixture
def labeled_paths(labeling_home):
    """Three labeled images of each of the four classes; the other twelve unlabeled."""
    with open_database(load_settings()) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            items = item_queries.ok_item_paths(session, project.id)
        chosen = [(i, p) for name in CLASSES for i, p in [(i, p) for i, p in items if true_class(p) == name][:3]]
        record_annotations(db, [NewLabel(i, [true_class(p)]) for i, p in chosen], annotator="ann")
    return {p for _, p in chosen}


def _runs():
    with open_database(load_settings()) as db, db.reading() as session:
        runs = list(session.scalars(select(SelectionRun).order_by(SelectionRun.id)))
        picks = {
            run.id: list(session.scalars(select(Pick).where(Pick.selection_run_id == run.id).order_by(Pick.rank)))
            for run in runs
        }
        versions = list(session.scalars(select(ModelVersion)))
    return runs, picks, versions


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


@pytest.mark.slow
def test_select_writes_n_picks_with_score_parts_and_records_the_run(labeled_paths, tmp_path, capsys):
    out = tmp_path / "picks.csv"

    assert main(["select", "--n", "5", "--out", str(out)]) == 0

    columns, rows = _read(out)
    assert tuple(columns) == CSV_COLUMNS and set(PART_NAMES) <= set(columns)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert len({r["path"] for r in rows}) == 5 and not {r["path"] for r in rows} & labeled_paths
    assert all(r["predicted"] in CLASSES and 0 < float(r["probability"]) <= 1 for r in rows)
    assert all(any(r[name] for name in PART_NAMES) for r in rows)
    runs, picks, versions = _runs()
    assert len(runs) == 1 and runs[0].strategy == "default"
    assert len(versions) == 1 and versions[0].n_labels == 12 and runs[0].model_version_id == versions[0].id
    stored = picks[runs[0].id]
    assert [p.item_id for p in stored] == [int(r["item_id"]) for r in rows]
    for pick, row in zip(stored, rows):
        assert pick.source == row["source"]
        assert {name: float(row[name]) for name in PART_NAMES if row[name]} == pytest.approx(pick.score_parts, rel=1e-5)
    printed = capsys.readouterr().out
    assert printed.startswith("selected 5 of 12 unlabeled images") and f"selection run {runs[0].id}" in printed


@pytest.mark.slow
def test_a_second_select_reuses_the_stored_model_and_other_strategies_leave_the_app_setting(
    labeled_paths, labeling_home, tmp_path
):
    assert main(["select", "--n", "3", "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["select", "--n", "100", "--strategy", "margin", "--out", str(tmp_path / "b.csv")]) == 0

    runs, _, versions = _runs()
    assert [run.strategy for run in runs] == ["default", "margin"]
    assert len(versions) == 1  # trained on the same labels: no retrain
    _, rows = _read(tmp_path / "b.csv")
    assert len(rows) == 12 and {r["source"] for r in rows} <= {"margin", "audit"}  # every unlabeled image, no more
    with open_database(load_settings()) as db:  # --strategy is for this run only: nothing saved
        assert read_setting(db, get_project(db, "default").id, SELECTION) is None


@pytest.mark.slow
def test_without_labels_select_still_chooses_and_says_there_is_no_model(labeling_home, tmp_path, capsys):
    assert main(["select", "--n", "4", "--out", str(tmp_path / "p.csv")]) == 0
    _, rows = _read(tmp_path / "p.csv")
    assert len(rows) == 4 and all(r["predicted"] == "" and r["probability"] == "" for r in rows)
    assert "no model yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "0"], "positive"),
        (["--n", "many"], "positive"),
        (["--n", "5", "--strategy", "best"], ", ".join(map(repr, ALL_STRATEGIES))),
    ],
)
def test_bad_arguments_are_usage_errors(home, tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["select", *argv, "--out", str(tmp_path / "p.csv")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_empty_or_missing_project_says_to_ingest_first(home, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["ingest", str(tmp_path / "empty"), "--project", "empty"]) == 0
    capsys.readouterr()

    assert main(["select", "--n", "5", "--project", "empty", "--out", str(tmp_path / "p.csv")]) == 1
    assert "has no images; ingest some first" in capsys.readouterr().err
    assert main(["select", "--n", "5", "--project", "nowhere", "--out", str(tmp_path / "p.csv")]) == 1
    assert "python -m app.cli ingest" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_probability_is_the_top_class_probability(labeled_paths, tmp_path):
    assert main(["select", "--n", "6", "--out", str(tmp_path / "p.csv")]) == 0
    _, rows = _read(tmp_path / "p.csv")
    # With four classes the most probable one has at least a quarter.
    assert all(float(r["probability"]) >= 0.25 - 1e-6 and not math.isnan(float(r["probability"])) for r in rows)


@pytest.mark.slow
def test_a_multi_label_project_gets_class_sets_as_predictions(labeling_home, tmp_path):
    labeled = _multi_label_project()

    assert main(["select", "--n", "4", "--out", str(tmp_path / "p.csv")]) == 0

    _, rows = _read(tmp_path / "p.csv")
    assert len(rows) == 4 and not {r["path"] for r in rows} & labeled
    assert all(set(filter(None, r["predicted"].split(";"))) <= set(CLASSES) for r in rows)
    assert all(0 < float(r["probability"]) <= 1 for r in rows)


@pytest.mark.slow
def test_picks_as_label_studio_tasks_come_back_as_labels_only_where_someone_labeled_them(
    labeled_paths, tmp_path, capsys
):
    tasks_file = tmp_path / "tasks.json"
    assert main(["select", "--n", "5", "--out", str(tmp_path / "p.csv"), "--tasks", str(tasks_file)]) == 0
    _, rows = _read(tmp_path / "p.csv")
    tasks = json.loads(tasks_file.read_text())
    runs, _, versions = _runs()
    assert [t["data"]["banana_path"] for t in tasks] == [r["path"] for r in rows]
    assert all(t["data"]["image"].startswith("/data/local-files/?d=") for t in tasks)
    assert [
        (t["predictions"][0]["model_version"], t["predictions"][0]["result"][0]["value"]["choices"]) for t in tasks
    ] == [(f"banana-model-{versions[0].id}", [r["predicted"]]) for r in rows]

    # In Label Studio someone labels the first three (the pre-annotation, corrected or not); two stay untouched.
    for task in tasks[:3]:
        choices = [true_class(task["data"]["banana_path"])]
        task["annotations"] = [
            {
                "id": 1,
                "was_cancelled": False,
                "result": [
                    {"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": choices}}
                ],
            }
        ]
    tasks_file.write_text(json.dumps(tasks, indent=1))
    capsys.readouterr()
    assert main(["import-labels", str(tasks_file), "--annotator", "ls-team"]) == 0
    assert "imported 3 labels" in capsys.readouterr().out
    with open_database(load_settings()) as db:
        after = {i.path: i.labels for i in labeled_images(db, "default")}
    assert {p: after[p] for p in (r["path"] for r in rows) if p in after} == {
        r["path"]: [true_class(r["path"])] for r in rows[:3]
    }


def _queue(items):
    from services.labeling.priority_asks import queue_priority_asks

    with open_database(load_settings()) as db:
        project_id = get_project(db, "default").id
        queue_priority_asks(
            db, project_id=project_id, items=[(item, {"triage_margin": rank / 10}) for rank, item in enumerate(items)]
        )
        return project_id


def _waiting(project_id):
    from tests.team_project import pending_items

    with open_database(load_settings()) as db:
        return pending_items(db, project_id)


def _unlabeled(labeled_paths):
    with open_database(load_settings()) as db, db.reading() as session:
        items = item_queries.ok_item_paths(session, get_project(db, "default").id)
    return [i for i, p in sorted(items, reverse=True) if p not in labeled_paths]


@pytest.mark.slow
def test_select_takes_the_triage_queue_first_in_order_and_it_leaves_the_queue(labeled_paths, tmp_path, capsys):
    queued = _unlabeled(labeled_paths)[:3]  # newest first: an order no strategy follows
    project_id = _queue(queued)
    out = tmp_path / "picks.csv"
    capsys.readouterr()

    assert main(["select", "--n", "5", "--out", str(out)]) == 0

    _, rows = _read(out)
    assert [int(r["item_id"]) for r in rows[:3]] == queued
    assert [r["source"] for r in rows[:3]] == ["triage"] * 3 and "triage" not in {r["source"] for r in rows[3:]}
    assert len(rows) == 5 and len({r["item_id"] for r in rows}) == 5
    assert all(r["predicted"] in CLASSES and 0 < float(r["probability"]) <= 1 for r in rows)
    runs, picks, _ = _runs()
    select_run = runs[-1]
    assert select_run.strategy == "default"
    assert [(p.rank, p.item_id, p.source) for p in picks[select_run.id]] == [
        (rank, int(r["item_id"]), r["source"]) for rank, r in enumerate(rows)
    ]
    assert [p.score_parts for p in picks[select_run.id][:3]] == [{"triage_margin": k / 10} for k in range(3)]
    assert "3 from the Triage queue" in capsys.readouterr().out
    assert _waiting(project_id) == []  # handed out: no longer asked first on the Label page
    queue_run = next(run for run in runs if run.strategy == "triage")
    assert all(p.withdrawn_at is not None for p in picks[queue_run.id])  # the queue's picks stay, withdrawn


@pytest.mark.slow
def test_select_smaller_than_the_queue_takes_only_queued_images_and_leaves_the_rest(labeled_paths, tmp_path):
    queued = _unlabeled(labeled_paths)[:4]
    project_id = _queue(queued)
    out = tmp_path / "picks.csv"
    assert main(["select", "--n", "2", "--out", str(out)]) == 0
    _, rows = _read(out)
    assert [(int(r["item_id"]), r["source"]) for r in rows] == [(item, "triage") for item in queued[:2]]
    runs, picks, _ = _runs()
    assert runs[-1].strategy == "default" and [p.item_id for p in picks[runs[-1].id]] == queued[:2]
    assert _waiting(project_id) == queued[2:]


@pytest.mark.slow
def test_select_no_queue_leaves_the_queue_alone(labeled_paths, tmp_path, capsys):
    queued = _unlabeled(labeled_paths)[:3]
    project_id = _queue(queued)
    out = tmp_path / "picks.csv"
    capsys.readouterr()
    assert main(["select", "--n", "5", "--no-queue", "--out", str(out)]) == 0
    _, rows = _read(out)
    assert len(rows) == 5 and "triage" not in {r["source"] for r in rows}
    assert "Triage queue" not in capsys.readouterr().out
    assert _waiting(project_id) == queued


def _multi_label_project():
    """Make project "default" multi-label with 16 images labeled one or two classes; return the labeled paths."""
    with open_database(load_settings()) as db:
        with db.writing() as session:
            session.get(Project, get_project(db, "default").id).multi_label = True
        with db.reading() as session:
            items = item_queries.ok_item_paths(session, get_project(db, "default").id)
        labels = [NewLabel(i, sorted({true_class(p), CLASSES[n % 4]})) for n, (i, p) in enumerate(items[:16])]
        record_annotations(db, labels, annotator="ann")
    return {p for _, p in items[:16]}


@pytest.mark.slow
def test_a_multi_label_project_records_queued_images_predicted_class_sets_as_strategy_picks(labeling_home, tmp_path):
    labeled = _multi_label_project()
    # First every unlabeled image as a strategy pick: the multi-label model's class set for each.
    assert main(["select", "--n", "100", "--no-queue", "--out", str(tmp_path / "strategy.csv")]) == 0
    runs, picks, _ = _runs()
    as_strategy_pick = {p.item_id: sorted(p.predicted) for p in picks[runs[-1].id]}
    _, strategy_rows = _read(tmp_path / "strategy.csv")
    names = {int(r["item_id"]): r["predicted"] for r in strategy_rows}
    # Images whose set is not one class: the top class alone would differ from the set.
    queued = [item for item in _unlabeled(labeled) if len(as_strategy_pick[item]) != 1][:3]
    assert queued, as_strategy_pick
    _queue(queued)

    assert main(["select", "--n", str(len(queued)), "--out", str(tmp_path / "p.csv")]) == 0

    runs, picks, versions = _runs()
    assert len(versions) == 1  # the same labels: the same stored model scored both runs
    assert [(p.item_id, p.source, sorted(p.predicted)) for p in picks[runs[-1].id]] == [
        (item, "triage", as_strategy_pick[item]) for item in queued
    ]
    _, rows = _read(tmp_path / "p.csv")
    assert [(int(r["item_id"]), r["predicted"]) for r in rows] == [(item, names[item]) for item in queued]


@pytest.mark.slow
def test_select_waits_while_another_process_writes_the_embeddings(labeled_paths, tmp_path, capsys, monkeypatch):
    settings = load_settings()
    with open_database(settings) as db:
        folder = embeddings_folder(settings, get_project(db, "default"), identify_backbone("bundled").key)
    release = tmp_path / "release"
    with store_held_elsewhere("bundled", folder, release):
        assert main(["select", "--n", "2", "--out", str(tmp_path / "refused.csv"), "--wait", "0"]) == 1
        assert "another process is writing" in capsys.readouterr().err
        told = select_command.say_waiting
        monkeypatch.setattr(select_command, "say_waiting", lambda folder: (told(folder), release.touch()))
        assert main(["select", "--n", "2", "--out", str(tmp_path / "picks.csv"), "--wait", "1"]) == 0
    assert "waiting for it to finish" in capsys.readouterr().err
    assert len(_read(tmp_path / "picks.csv")[1]) == 2
