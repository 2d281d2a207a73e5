"""initial schema

Tables for projects, items, classes, append-only annotations, annotators, model
versions and selection runs with their picks. Triggers make ``annotation`` and
``annotation_class`` append-only on SQLite and PostgreSQL.

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 09:26:10
"""

from alembic import op
import sqlalchemy as sa

APPEND_ONLY_TABLES = ("annotation", "annotation_class")
APPEND_ONLY_MESSAGE = "annotations are append-only: record a new annotation that supersedes this one"


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotator')),
    sa.UniqueConstraint('name', name=op.f('uq_annotator_name'))
    )
    op.create_table('project',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('root_path', sa.Text(), nullable=False),
    sa.Column('multi_label', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project')),
    sa.UniqueConstraint('name', name=op.f('uq_project_name'))
    )
    op.create_table('item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=True),
    sa.Column('status', sa.Enum('ok', 'error', name='itemstatus', native_enum=False, length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_item_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item')),
    sa.UniqueConstraint('project_id', 'path', name=op.f('uq_item_project_id_path')),
    sa.UniqueConstraint('project_id', 'sha256', name=op.f('uq_item_project_id_sha256'))
    )
    op.create_table('label_class',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_label_class_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_class')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_label_class_project_id_name'))
    )
    op.create_table('model_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('n_labels', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('artifact_path', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_model_version_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_version'))
    )
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_version_project_id'), ['project_id'], unique=False)

    op.create_table('annotation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.Enum('human', 'import', 'propagated', 'review', name='annotationsource', native_enum=False, length=16), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_annotation_annotator_id_annotator')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_annotation_item_id_item')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['annotation.id'], name=op.f('fk_annotation_supersedes_id_annotation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation'))
    )
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_annotator_id'), ['annotator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_item_id'), ['item_id'], unique=False)

    op.create_table('duplicate_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_duplicate_file_item_id_item')),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_duplicate_file_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duplicate_file')),
    sa.UniqueConstraint('project_id', 'path', name=op.f('uq_duplicate_file_project_id_path'))
    )
    with op.batch_alter_table('duplicate_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_file_item_id'), ['item_id'], unique=False)

    op.create_table('selection_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('strategy', sa.String(length=100), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], name=op.f('fk_selection_run_model_version_id_model_version')),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_selection_run_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_selection_run'))
    )
    with op.batch_alter_table('selection_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_selection_run_project_id'), ['project_id'], unique=False)

    op.create_table('annotation_class',
    sa.Column('annotation_id', sa.Integer(), nullable=False),
    sa.Column('label_class_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotation.id'], name=op.f('fk_annotation_class_annotation_id_annotation')),
    sa.ForeignKeyConstraint(['label_class_id'], ['label_class.id'], name=op.f('fk_annotation_class_label_class_id_label_class')),
    sa.PrimaryKeyConstraint('annotation_id', 'label_class_id', name=op.f('pk_annotation_class'))
    )
    with op.batch_alter_table('annotation_class', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_class_label_class_id'), ['label_class_id'], unique=False)

    op.create_table('pick',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('selection_run_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('score_parts', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_pick_item_id_item')),
    sa.ForeignKeyConstraint(['selection_run_id'], ['selection_run.id'], name=op.f('fk_pick_selection_run_id_selection_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pick')),
    sa.UniqueConstraint('selection_run_id', 'item_id', name=op.f('uq_pick_selection_run_id_item_id')),
    sa.UniqueConstraint('selection_run_id', 'rank', name=op.f('uq_pick_selection_run_id_rank'))
    )
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pick_item_id'), ['item_id'], unique=False)

    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pick_item_id'))

    op.drop_table('pick')
    with op.batch_alter_table('annotation_class', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_class_label_class_id'))

    op.drop_table('annotation_class')
    with op.batch_alter_table('selection_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_selection_run_project_id'))

    op.drop_table('selection_run')
    with op.batch_alter_table('duplicate_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duplicate_file_item_id'))

    op.drop_table('duplicate_file')
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_item_id'))
        batch_op.drop_index(batch_op.f('ix_annotation_annotator_id'))

    op.drop_table('annotation')
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_version_project_id'))

    op.drop_table('model_version')
    op.drop_table('label_class')
    op.drop_table('item')
    op.drop_table('project')
    op.drop_table('annotator')


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION refuse_annotation_change() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            name = f"{table}_refuse_{action.lower()}"
            if dialect == "sqlite":
                op.execute(
                    f"CREATE TRIGGER {name} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
            elif dialect == "postgresql":
                op.execute(
                    f"CREATE TRIGGER {name} BEFORE {action} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_annotation_change()"
                )


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY_TABLES:
        for action in ("update", "delete"):
            if dialect == "sqlite":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_{action}")
            elif dialect == "postgresql":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_{action} ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS refuse_annotation_change()")
