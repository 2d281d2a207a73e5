"""Single-label and multi-label projects: created so from the CLI, never switched silently;
switched by the service (to multi-label always, back only when no image has several classes);
a running engine rebuilt for the new mode."""

import time

import pytest

from app.cli import main
from services.config import load_settings
from services.database import open_database
from services.engine.lifecycle import grow_pool, refresh_engine, start_engine
from services.errors import UserError
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.labeling.session import LabelingSession
from services.projects import get_project, project_counts, set_multi_label
from storage.labels import label_queries
from tests.images import write_image
from tests.labeling_project import class_id
from tests.labels_by_name import record_annotation
from tests.team_project import item_ids_by_path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    for seed in range(4):
        write_image(folder / f"img{seed}.png", seed)
    return folder


def _mode(name: str) -> bool:
    with open_database(load_settings()) as db:
        return get_project(db, name).multi_label


# ----- CLI ---------------------------------------------------------------------------


def test_ingest_with_multi_label_creates_a_multi_label_project(home, images, capsys):
    assert main(["ingest", str(images), "--project", "tags", "--multi-label"]) == 0
    assert "(root " in (out := capsys.readouterr().out) and "multi-label)" in out and "added: 4" in out
    assert _mode("tags") is True

    write_image(images / "more.png", 9)
    assert main(["ingest", str(images), "--project", "tags"]) == 0  # no flag: the project's own mode
    assert main(["ingest", str(images), "--project", "tags", "--multi-label"]) == 0
    assert _mode("tags") is True and "added: 0" in capsys.readouterr().out


def test_ingest_without_a_flag_creates_a_single_label_project(home, images, capsys):
    assert main(["ingest", str(images), "--project", "plain"]) == 0
    assert "single-label)" in capsys.readouterr().out
    assert _mode("plain") is False


def test_a_mode_that_differs_from_the_existing_project_is_an_error_and_nothing_changes(home, images, tmp_path, capsys):
    assert main(["ingest", str(images), "--project", "cats"]) == 0
    capsys.readouterr()
    write_image(images / "new.png", 7)

    assert main(["ingest", str(images), "--project", "cats", "--multi-label"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: project 'cats' is single-label, not multi-label")
    assert "leave out --multi-label" in err and "Classes and settings" in err and "another --project" in err
    with open_database(load_settings()) as db:
        project = get_project(db, "cats")
        assert project.multi_label is False and project_counts(db, project).ok == 4  # not switched, nothing added

    assert main(["ingest", str(images), "--project", "tags", "--multi-label"]) == 0
    capsys.readouterr()
    assert main(["ingest", str(images), "--project", "tags", "--single-label"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: project 'tags' is multi-label, not single-label") and "leave out --single-label" in err
    )
    assert _mode("tags") is True


def test_the_two_mode_flags_exclude_each_other(home, images, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["ingest", str(images), "--multi-label", "--single-label"])
    assert exited.value.code == 2 and "not allowed with" in capsys.readouterr().err


@pytest.mark.slow
def test_a_missing_path_with_a_mode_still_says_it_does_not_exist(home, tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nowhere"), "--multi-label"]) == 1
    assert "does not exist" in capsys.readouterr().err


# ----- the service switch, on SQLite and PostgreSQL -----------------------------------


def test_switching_modes_both_ways_counts_the_images_with_several_classes(backend_db, backend_settings, images):
    ingest(backend_db, backend_settings, source=images, project="p")
    project = get_project(backend_db, "p")
    for name in ("cat", "dog", "bird"):
        add_label_class(backend_db, project=project, name=name)
    with backend_db.reading() as session:
        ids = item_ids_by_path(session, project.id, [f"img{seed}.png" for seed in range(4)])
    single = record_annotation(backend_db, item_id=ids["img0.png"], class_names=["cat"], annotator="ann")
    with pytest.raises(UserError, match="single-label"):
        record_annotation(backend_db, item_id=ids["img1.png"], class_names=["cat", "dog"], annotator="ann")

    assert set_multi_label(backend_db, "p", False) is False  # already single-label: nothing to do
    assert set_multi_label(backend_db, "p", True) is True
    assert get_project(backend_db, "p").multi_label is True
    assert set_multi_label(backend_db, "p", True) is False
    first = record_annotation(backend_db, item_id=ids["img1.png"], class_names=["cat", "dog"], annotator="ann")
    second = record_annotation(backend_db, item_id=ids["img2.png"], class_names=["dog", "bird"], annotator="ann")
    record_annotation(backend_db, item_id=ids["img3.png"], class_names=["bird"], annotator="ann")
    with backend_db.reading() as session:  # the single label given before the switch is still the current one
        assert label_queries.current_labels(session, project.id)[ids["img0.png"]].annotation_id == single

    with pytest.raises(UserError, match=r"project 'p' stays multi-label: 2 images carry more than one class"):
        set_multi_label(backend_db, "p", False)
    assert get_project(backend_db, "p").multi_label is True
    record_annotation(backend_db, item_id=ids["img1.png"], class_names=["dog"], annotator="ann", supersedes_id=first)
    with pytest.raises(UserError, match=r"1 image carries more than one class"):
        set_multi_label(backend_db, "p", False)
    record_annotation(backend_db, item_id=ids["img2.png"], class_names=[], annotator="ann", supersedes_id=second)

    assert set_multi_label(backend_db, "p", False) is True  # cleared and single labels only
    assert get_project(backend_db, "p").multi_label is False
    with pytest.raises(UserError, match="single-label"):
        record_annotation(backend_db, item_id=ids["img2.png"], class_names=["cat", "dog"], annotator="ann")
    with pytest.raises(UserError, match="no project called 'q'"):
        set_multi_label(backend_db, "q", True)


# ----- the running engine -------------------------------------------------------------


def _engine_in_mode(db, settings, multi_label: bool):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        startup = grow_pool(db, settings)
        if startup.engine is not None and startup.engine.multi_label == multi_label and startup.growing is None:
            return startup.engine
        time.sleep(0.05)
    raise AssertionError(f"the engine was not rebuilt as multi_label={multi_label}: {startup}")


@pytest.mark.slow
def test_a_refreshed_engine_takes_the_new_mode_and_not_a_model_of_the_other_mode(engine):
    db, settings = engine.db, engine.settings
    session = LabelingSession(engine, "ann")
    for name in ("cat", "frog"):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, name)])
    engine.retrain_now()
    deadline = time.monotonic() + 60
    while engine.serving.probe is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.serving.probe is not None and not engine.serving.probe.multi_label
    session.close()

    set_multi_label(db, "default", True)
    refresh_engine(settings)
    multi = _engine_in_mode(db, settings, True)
    assert multi is not engine and start_engine(db, settings).engine is multi
    assert multi.serving.probe is None or multi.serving.probe.multi_label  # the single-label probe is not served
    assert len(multi.labeled_items()) == 2
    session = LabelingSession(multi, "ann")
    ask = session.current()
    session.label(ask.item_id, [class_id(multi, "cat"), class_id(multi, "truck")])
    assert len(multi.current_label(ask.item_id).class_ids) == 2
    session.close()

    with pytest.raises(UserError, match="1 image carries"):
        set_multi_label(db, "default", False)
