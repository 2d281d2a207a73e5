"""Migration 0008 (``pick.withdrawn_at``) on SQLite and PostgreSQL: a database at 0007 with
a queued pick upgrades with the pick kept and waiting (NULL), and downgrades again."""

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from storage.db import create_engine_for_url
from storage.schema import MIGRATIONS_DIR


def _migrate(engine, revision, *, down=False):
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _columns(engine):
    return {column["name"] for column in inspect(engine).get_columns("pick")}


def test_withdrawn_at_is_added_null_for_existing_picks_and_removed_on_downgrade(backend_settings):
    backend_settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for_url(backend_settings.database_url)
    try:
        _migrate(engine, "0007")
        assert "withdrawn_at" not in _columns(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO project (id, name, root_path, multi_label, created_at) "
                    "VALUES (1, 'p', '/r', false, '2026-11-27 10:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO item (id, project_id, path, size_bytes, mtime_ns, status, created_at) "
                    "VALUES (1, 1, 'a.png', 1, 1, 'ok', '2026-11-27 10:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO selection_run (id, project_id, strategy, parameters, created_at) "
                    "VALUES (1, 1, 'triage', '{}', '2026-11-27 10:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO pick (id, selection_run_id, item_id, rank, score_parts, source) "
                    "VALUES (1, 1, 1, 0, '{}', 'triage')"
                )
            )
        _migrate(engine, "head")
        assert "withdrawn_at" in _columns(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id, source, withdrawn_at FROM pick")).all() == [(1, "triage", None)]
        _migrate(engine, "0007", down=True)
        assert "withdrawn_at" not in _columns(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id, source FROM pick")).all() == [(1, "triage")]
    finally:
        engine.dispose()
