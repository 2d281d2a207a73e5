"""Every label goes one way (services.labeling.write) and reaches every engine of the project:
those of this process at once, those of other processes at their next poll."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from services.database import open_database
from services.engine.lifecycle import GrowthConfig, grow_pool
from services.labeling.session import LabelingSession
from services.labeling.write import LabelWrite, write_labels
from storage.labels import label_queries
from storage.models import LabelClass
from tests.labeling_project import class_id, true_class

REPO_ROOT = Path(__file__).resolve().parents[1]
EVERY_PAGE_RUN = GrowthConfig(check_seconds=0.0)


def database_labels(engine):
    with engine.db.reading() as session:
        return label_queries.current_labels(session, engine.project_id)


@pytest.mark.slow
def test_labels_and_a_class_imported_by_another_process_reach_the_running_engine(engine, labeling_home, tmp_path):
    paths = engine.pool.paths[:6]  # three labeled as a new class, three as their own
    rows = [f"{path},{'zebra' if i < 3 else true_class(path)}\n" for i, path in enumerate(paths)]
    (tmp_path / "labels.csv").write_text("path,labels\n" + "".join(rows))
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "import-labels", str(tmp_path / "labels.csv")],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "BANANA_HOME": str(labeling_home)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "zebra" not in {c.name for c in engine.classes.values()}  # another process: not announced here

    startup = grow_pool(engine.db, engine.settings, config=EVERY_PAGE_RUN)  # what every page run calls

    assert startup.engine is engine
    zebra = class_id(engine, "zebra")  # offered now, without a restart
    assert [engine.current_label(int(engine.pool.item_ids[i])).class_ids for i in range(3)] == [(zebra,)] * 3
    assert sorted(engine.labeled_items()) == sorted(
        i for i, label in database_labels(engine).items() if label.class_ids
    )
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    assert engine.serving.metrics["trained_labels"] == 6  # the model learns from every label in the database


@pytest.mark.slow
def test_after_two_classes_swap_names_elsewhere_a_label_is_recorded_under_the_class_chosen(engine):
    cat, frog = class_id(engine, "cat"), class_id(engine, "frog")
    with engine.db.writing() as session:  # another server swaps the names; this engine is not told
        session.execute(update(LabelClass).where(LabelClass.id == cat).values(name="tmp"))
        session.execute(update(LabelClass).where(LabelClass.id == frog).values(name="cat"))
        session.execute(update(LabelClass).where(LabelClass.id == cat).values(name="frog"))
    session = LabelingSession(engine, "ann")
    ask = session.current()

    session.label(ask.item_id, [cat])

    assert database_labels(engine)[ask.item_id].class_ids == (cat,)
    assert engine.current_label(ask.item_id).class_ids == (cat,)


def test_a_label_written_through_another_database_object_reaches_this_processs_engine_at_once(engine):
    item = int(engine.pool.item_ids[0])
    with open_database(replace(engine.settings)) as other:
        (annotation_id,) = write_labels(
            other,
            project_id=engine.project_id,
            annotator="eve",
            labels=[LabelWrite(item, (class_id(engine, true_class(engine.pool.paths[0])),))],
        )

    assert engine.current_label(item).annotation_id == annotation_id
