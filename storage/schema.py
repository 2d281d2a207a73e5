"""Bring a database to the newest schema through the Alembic migrations."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Key of the PostgreSQL advisory lock that upgrades hold: any fixed 64-bit number ("banana" in ASCII).
MIGRATION_LOCK_KEY = 0x62616E616E61
# Alembic's migration context is one per process, so this process's upgrades take turns first.
_upgrading_here = threading.Lock()


def upgrade_to_head(engine: Engine) -> None:
    """Apply every migration the database lacks, in one transaction.

    An empty database gets its whole schema this way, never from
    ``create_all``, so every database has a recorded Alembic revision.
    Upgrades take turns: on PostgreSQL, where two first opens of an empty
    database would both create ``alembic_version``, under an advisory lock held
    until the transaction ends, so the second one finds the schema made.
    (SQLite write transactions already take turns.)
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _upgrading_here, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
