import sqlite3
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from storage import queries
from storage.db import SqlitePragmas, create_engine_for_url
from storage.models import (
    Annotation,
    AnnotationSource,
    Base,
    Item,
    ItemStatus,
    ModelVersion,
    Pick,
    SelectionRun,
)
from storage.schema import MIGRATIONS_DIR

TABLES = {
    "alembic_version",
    "annotation",
    "annotation_class",
    "annotator",
    "project_setting",
    "duplicate_file",
    "failure_slice",
    "remembered_sign_in",
    "failure_slice_example",
    "failure_slice_metric",
    "item",
    "item_lease",
    "label_class",
    "model_version",
    "pick",
    "project",
    "review_task",
    "selection_run",
}


def _head_revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return set(ScriptDirectory.from_config(config).get_heads())


def test_migration_creates_the_schema_on_an_empty_database(backend_db):
    assert set(inspect(backend_db.engine).get_table_names()) == TABLES
    with backend_db.engine.connect() as connection:
        assert set(connection.scalars(text("SELECT version_num FROM alembic_version"))) == _head_revisions()


def test_migrated_schema_matches_the_models(backend_db):
    with backend_db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_every_sqlite_connection_gets_the_safety_pragmas(db):
    # Held at once, so they are distinct pooled connections.
    connections = [db.engine.raw_connection() for _ in range(3)]
    for connection in connections:
        pragma = lambda name: connection.cursor().execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731, B023
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("busy_timeout") >= 5000
        assert pragma("foreign_keys") == 1
    for connection in connections:
        connection.close()


def test_pragmas_come_from_the_engine_not_sqlite_defaults(tmp_path):
    # Values SQLite and Python never choose themselves, on a fresh file (journal mode is per file).
    engine = create_engine_for_url(
        f"sqlite:///{tmp_path / 'fresh.db'}", pragmas=SqlitePragmas(synchronous="EXTRA", busy_timeout_ms=12345)
    )
    connection = engine.raw_connection()
    cursor = connection.cursor()
    assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 3  # EXTRA
    assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 12345
    assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    connection.close()
    engine.dispose()


def _database_path(db) -> str:
    return db.engine.url.database


def test_write_sessions_take_the_write_lock_at_begin(db):
    with db.writing() as session:
        session.execute(select(1))  # a read only; BEGIN IMMEDIATE has locked already
        other = sqlite3.connect(_database_path(db), timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_read_sessions_do_not_block_writers(db):
    with db.reading() as session:
        session.execute(select(1))
        other = sqlite3.connect(_database_path(db), timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()


def _project_with_item(session, *, multi_label=False):
    project = queries.add_project(session, name="p", root_path="/data", multi_label=multi_label)
    ((item_id, _),) = queries.insert_items(
        session,
        [
            {
                "project_id": project.id,
                "path": "a/b.jpg",
                "sha256": "0" * 64,
                "size_bytes": 10,
                "mtime_ns": 20,
                "width": 3,
                "height": 4,
                "format": "JPEG",
                "status": ItemStatus.OK,
                "error": None,
            }
        ],
    )
    return project, item_id


def test_round_trip_of_every_table(backend_db):
    with backend_db.writing() as session:
        project, item_id = _project_with_item(session, multi_label=True)
        cat = queries.add_label_class(session, project.id, "cat")
        dog = queries.add_label_class(session, project.id, "dog")
        ann = queries.get_or_add_annotator(session, "ann")
        first = queries.add_annotation(
            session,
            item_id=item_id,
            label_classes=[cat, dog],
            source=AnnotationSource.HUMAN,
            annotator_id=ann.id,
            duration_ms=1500,
        )
        undo = queries.add_annotation(
            session,
            item_id=item_id,
            label_classes=[],
            source=AnnotationSource.HUMAN,
            annotator_id=ann.id,
            supersedes_id=first.id,
        )
        version = ModelVersion(
            project_id=project.id, n_labels=1, metrics={"accuracy": 0.5}, artifact_path="models/1.safetensors"
        )
        session.add(version)
        session.flush()
        run = SelectionRun(
            project_id=project.id, model_version_id=version.id, strategy="band", parameters={"n": 1, "band": [0.3, 0.7]}
        )
        session.add(run)
        session.flush()
        session.add(Pick(selection_run_id=run.id, item_id=item_id, rank=0, score_parts={"margin": 0.25, "band": 0.5}))
        first_id, undo_id = first.id, undo.id

    with backend_db.reading() as session:
        item = session.get(Item, item_id)
        assert (item.path, item.width, item.height, item.format, item.status) == (
            "a/b.jpg",
            3,
            4,
            "JPEG",
            ItemStatus.OK,
        )
        assert item.created_at.tzinfo is UTC
        stored_first = session.get(Annotation, first_id)
        assert sorted(c.name for c in stored_first.classes) == ["cat", "dog"]
        assert (stored_first.duration_ms, stored_first.source) == (1500, AnnotationSource.HUMAN)
        latest = queries.latest_annotation(session, item_id)
        assert (latest.id, latest.supersedes_id, latest.classes) == (undo_id, first_id, [])
        stored_run = session.scalars(select(SelectionRun)).one()
        assert stored_run.parameters == {"n": 1, "band": [0.3, 0.7]}
        stored_pick = session.scalars(select(Pick)).one()
        assert (stored_pick.item_id, stored_pick.rank, stored_pick.score_parts) == (
            item_id,
            0,
            {"margin": 0.25, "band": 0.5},
        )
        assert session.scalars(select(ModelVersion)).one().metrics == {"accuracy": 0.5}


@pytest.mark.parametrize(
    "statement", ["UPDATE annotation SET duration_ms = 1", "DELETE FROM annotation", "DELETE FROM annotation_class"]
)
@pytest.mark.slow
def test_annotations_are_append_only(backend_db, statement):
    with backend_db.writing() as session:
        project, item_id = _project_with_item(session)
        cat = queries.add_label_class(session, project.id, "cat")
        queries.add_annotation(session, item_id=item_id, label_classes=[cat], source=AnnotationSource.IMPORT)
    with pytest.raises(DBAPIError, match="append-only"):
        with backend_db.writing() as session:
            session.execute(text(statement))


def test_same_content_twice_in_a_project_is_refused(backend_db):
    with backend_db.writing() as session:
        project, _ = _project_with_item(session)
    with pytest.raises(IntegrityError):
        with backend_db.writing() as session:
            queries.insert_items(
                session,
                [
                    {
                        "project_id": project.id,
                        "path": "other.jpg",
                        "sha256": "0" * 64,
                        "size_bytes": 1,
                        "mtime_ns": 1,
                        "status": ItemStatus.OK,
                    }
                ],
            )


def test_foreign_keys_are_enforced(backend_db):
    with pytest.raises(IntegrityError):
        with backend_db.writing() as session:
            session.add(ModelVersion(project_id=999, n_labels=0, metrics={}, artifact_path="x"))


def test_naive_datetimes_are_refused(backend_db):
    with pytest.raises(StatementError, match="naive"):
        with backend_db.writing() as session:
            session.add(
                ModelVersion(project_id=1, n_labels=0, metrics={}, artifact_path="x", created_at=datetime(2020, 1, 1))
            )


@pytest.mark.parametrize("backend_settings", ["postgresql"], indirect=True)
def test_postgresql_connections_dropped_by_the_server_are_replaced(backend_db):
    with backend_db.reading() as session:
        backend_pid = session.scalar(text("SELECT pg_backend_pid()"))  # this connection goes back to the pool
    with create_engine_for_url(backend_db.engine.url.render_as_string(hide_password=False)).connect() as admin:
        assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    with backend_db.writing() as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) != backend_pid
