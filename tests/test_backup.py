"""SQLite backups taken while labels keep being written."""

import sqlite3
import threading
import time
from contextlib import closing

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.cli import main
from services.config import Settings, load_settings
from services.database import open_database
from services.errors import UserError
from services.labeling.classes import add_label_class
from services.projects import ensure_project, get_project
from services.transfer.backup import backup_database, restore_database
from storage import queries
from storage.labels import label_queries
from storage.models import ItemStatus
from storage.schema import MIGRATIONS_DIR
from tests.labels_by_name import record_annotation

WRITERS = 3


def _head_revisions() -> tuple[str, ...]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return tuple(sorted(ScriptDirectory.from_config(config).get_heads()))


def _labeled_project(db, root) -> list[int]:
    project = ensure_project(db, name="p", root=None, root_if_new=root)
    for name in ("cat", "dog"):
        add_label_class(db, project=project, name=name)
    rows = [
        {
            "project_id": project.id,
            "path": f"{n}.png",
            "sha256": f"{n:064x}",
            "size_bytes": 1,
            "mtime_ns": 1,
            "status": ItemStatus.OK,
        }
        for n in range(20)
    ]
    with db.writing() as session:
        return [item_id for item_id, _ in queries.insert_items(session, rows)]


class Writers:
    """Threads that record annotations until stopped, keeping the ids they were told are committed."""

    def __init__(self, db, item_ids):
        self.acknowledged: list[int] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(db, item_ids[n::WRITERS], f"writer{n}")) for n in range(WRITERS)
        ]

    def _write(self, db, item_ids, annotator):
        try:
            n = 0
            while not self._stop.is_set():
                annotation_id = record_annotation(
                    db, item_id=item_ids[n % len(item_ids)], class_names=[("cat", "dog")[n % 2]], annotator=annotator
                )
                with self._lock:
                    self.acknowledged.append(annotation_id)
                n += 1
        except BaseException as error:  # noqa: BLE001 - asserted empty
            self.errors.append(error)

    def snapshot(self) -> set[int]:
        with self._lock:
            return set(self.acknowledged)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _wait_for(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "writers made no progress"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_backup_taken_while_labels_are_written_is_whole_and_restores(db, settings, tmp_path):
    item_ids = _labeled_project(db, tmp_path)
    destination = tmp_path / "backups" / "banana-backup.db"
    with Writers(db, item_ids) as writers:
        _wait_for(lambda: len(writers.snapshot()) >= 50)
        before = writers.snapshot()
        report = backup_database(settings, destination)
        after_backup = len(writers.snapshot())
        _wait_for(lambda: len(writers.snapshot()) >= after_backup + 20)  # writes went on after it too
    assert writers.errors == []

    assert report.path == destination and report.revisions == _head_revisions()
    assert sorted(path.name for path in destination.parent.iterdir()) == [
        "banana-backup.db"
    ]  # no temporary or -wal left
    with closing(sqlite3.connect(destination)) as backup:
        assert backup.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert backup.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        backed_up = {row[0] for row in backup.execute("SELECT id FROM annotation")}
        unclassed = backup.execute(
            "SELECT count(*) FROM annotation WHERE id NOT IN (SELECT annotation_id FROM annotation_class)"
        )
        assert unclassed.fetchone() == (0,)  # every annotation arrived with its class row: one transaction, not half
    assert before <= backed_up
    everything = set(writers.snapshot())
    # One moment of the database: SQLite commits one writer at a time in id order, so the copy holds the oldest ids.
    assert backed_up == set(sorted(everything)[: len(backed_up)])

    restored_settings = Settings(home=tmp_path / "restored", database_url=f"sqlite:///{destination}")
    with open_database(restored_settings) as restored:
        project = get_project(restored, "p")
        with restored.reading() as session:
            assert {
                label.annotation_id for label in label_queries.current_labels(session, project.id).values()
            } <= backed_up
        new_id = record_annotation(restored, item_id=item_ids[0], class_names=["dog"], annotator="after restore")
    assert new_id > max(backed_up)


def test_a_second_backup_replaces_the_first(db, settings, tmp_path):
    item_ids = _labeled_project(db, tmp_path)
    destination = tmp_path / "banana-backup.db"
    backup_database(settings, destination)
    record_annotation(db, item_id=item_ids[0], class_names=["cat"], annotator="ann")
    backup_database(settings, destination)
    with closing(sqlite3.connect(destination)) as backup:
        assert backup.execute("SELECT count(*) FROM annotation").fetchone() == (1,)


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        ("postgresql+psycopg://banana:banana@localhost:5432/banana", "pg_dump"),
        ("sqlite://", "in memory"),
        ("sqlite:///{tmp}/missing.db", "no database at"),
    ],
)
def test_what_cannot_be_backed_up_is_refused_with_the_fix(tmp_path, database_url, message):
    settings = Settings(home=tmp_path / "home", database_url=database_url.format(tmp=tmp_path))
    with pytest.raises(UserError, match=message):
        backup_database(settings, tmp_path / "out.db")
    assert not (tmp_path / "out.db").exists()


def test_the_database_itself_or_a_folder_is_not_a_backup_file(db, settings, tmp_path):
    with pytest.raises(UserError, match="the database itself"):
        backup_database(settings, settings.home / "banana.db")
    with pytest.raises(UserError, match="is a folder"):
        backup_database(settings, tmp_path)


def test_backup_command(home, tmp_path, capsys):
    with open_database(load_settings()) as db:
        _labeled_project(db, tmp_path)
    out = tmp_path / "copy.db"
    assert main(["backup", "--out", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    with closing(sqlite3.connect(out)) as backup:
        assert backup.execute("SELECT count(*) FROM item").fetchone() == (20,)
    assert main(["backup", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def _annotation_ids(path) -> set[int]:
    with closing(sqlite3.connect(path)) as database:
        return {row[0] for row in database.execute("SELECT id FROM annotation")}


def test_restore_brings_the_backup_back_and_keeps_the_database_as_it_was(db, settings, tmp_path):
    item_ids = _labeled_project(db, tmp_path)
    kept = record_annotation(db, item_id=item_ids[0], class_names=["cat"], annotator="ann")
    backup_database(settings, tmp_path / "monday.db")
    later = record_annotation(db, item_id=item_ids[1], class_names=["dog"], annotator="ann")
    db.close()

    report = restore_database(settings, tmp_path / "monday.db")
    assert report.path == settings.home / "banana.db" and report.revisions == _head_revisions()
    assert _annotation_ids(report.path) == {kept}
    assert report.previous.name.startswith("banana.before-restore-")
    assert _annotation_ids(report.previous) == {kept, later}  # nothing is lost: the newer labels are saved
    with open_database(settings) as reopened:
        with reopened.reading() as session:
            labels = label_queries.current_labels(session, get_project(reopened, "p").id)
        assert {label.annotation_id for label in labels.values()} == {kept}
        assert record_annotation(reopened, item_id=item_ids[2], class_names=["cat"], annotator="ann") > kept


def test_restore_onto_a_fresh_machine_creates_the_database(db, settings, tmp_path):
    _labeled_project(db, tmp_path)
    backup_database(settings, tmp_path / "copy.db")
    fresh = Settings(home=tmp_path / "fresh", database_url=f"sqlite:///{tmp_path / 'fresh' / 'banana.db'}")
    report = restore_database(fresh, tmp_path / "copy.db")
    assert report.previous is None
    with open_database(fresh) as restored:
        assert get_project(restored, "p").name == "p"


def test_what_cannot_be_restored_is_refused_and_changes_nothing(db, settings, tmp_path):
    item_ids = _labeled_project(db, tmp_path)
    kept = record_annotation(db, item_id=item_ids[0], class_names=["cat"], annotator="ann")
    database = settings.home / "banana.db"
    with pytest.raises(UserError, match="no backup file at"):
        restore_database(settings, tmp_path / "missing.db")
    with pytest.raises(UserError, match="the database itself"):
        restore_database(settings, database)
    (tmp_path / "notes.txt").write_text("not a database at all, just some text " * 200)
    with pytest.raises(UserError, match="not a readable SQLite database"):
        restore_database(settings, tmp_path / "notes.txt")
    with closing(sqlite3.connect(tmp_path / "other.db")) as other:
        other.execute("CREATE TABLE t (x)")
        other.commit()
    with pytest.raises(UserError, match="not a banana database"):
        restore_database(settings, tmp_path / "other.db")
    with pytest.raises(UserError, match="pg_dump"):
        restore_database(
            Settings(home=tmp_path, database_url="postgresql+psycopg://u:p@localhost/banana"), tmp_path / "other.db"
        )
    assert _annotation_ids(database) == {kept}
    assert not list(settings.home.glob("*before-restore*"))


def test_restore_command(home, tmp_path, capsys):
    with open_database(load_settings()) as db:
        _labeled_project(db, tmp_path)
    assert main(["backup", "--out", str(tmp_path / "copy.db")]) == 0
    assert main(["restore", "--from", str(tmp_path / "copy.db")]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and "before-restore" in out
    assert main(["restore", "--from", str(tmp_path / "nothing.db")]) == 1
    assert "no backup file at" in capsys.readouterr().err
