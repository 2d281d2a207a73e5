"""Alembic environment.

The service layer passes an open connection in ``config.attributes["connection"]``;
the ``alembic`` command line (``alembic -c storage/alembic.ini ...``) gets the URL
from banana's settings instead.
"""

from alembic import context

from storage.db import create_engine_for_url
from storage.models import Base

target_metadata = Base.metadata


def _database_url() -> str:
    from services.config import load_settings

    return load_settings().resolved_database_url


def _run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = create_engine_for_url(_database_url())
    with engine.connect() as connection:
        _run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
