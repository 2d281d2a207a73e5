"""failure slices

A failure slice is a named neighbourhood of example items (``failure_slice`` and
``failure_slice_example``); after every retrain it is re-mined and measured, one
``failure_slice_metric`` row per model version.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-26 12:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('failure_slice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('backbone_key', sa.Text(), nullable=False),
    sa.Column('k', sa.Integer(), nullable=False),
    sa.Column('min_similarity', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_failure_slice_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failure_slice')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_failure_slice_project_id_name'))
    )
    with op.batch_alter_table('failure_slice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failure_slice_project_id'), ['project_id'], unique=False)

    op.create_table('failure_slice_example',
    sa.Column('failure_slice_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['failure_slice_id'], ['failure_slice.id'],
                            name=op.f('fk_failure_slice_example_failure_slice_id_failure_slice')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_failure_slice_example_item_id_item')),
    sa.PrimaryKeyConstraint('failure_slice_id', 'item_id', name=op.f('pk_failure_slice_example'))
    )
    with op.batch_alter_table('failure_slice_example', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failure_slice_example_item_id'), ['item_id'], unique=False)

    op.create_table('failure_slice_metric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('failure_slice_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('n_members', sa.Integer(), nullable=False),
    sa.Column('n_labeled', sa.Integer(), nullable=False),
    sa.Column('n_mined', sa.Integer(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('mined_item_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['failure_slice_id'], ['failure_slice.id'],
                            name=op.f('fk_failure_slice_metric_failure_slice_id_failure_slice')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'],
                            name=op.f('fk_failure_slice_metric_model_version_id_model_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failure_slice_metric')),
    sa.UniqueConstraint('failure_slice_id', 'model_version_id',
                        name=op.f('uq_failure_slice_metric_failure_slice_id_model_version_id'))
    )
    with op.batch_alter_table('failure_slice_metric', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failure_slice_metric_failure_slice_id'), ['failure_slice_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('failure_slice_metric', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failure_slice_metric_failure_slice_id'))
    op.drop_table('failure_slice_metric')
    with op.batch_alter_table('failure_slice_example', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failure_slice_example_item_id'))
    op.drop_table('failure_slice_example')
    with op.batch_alter_table('failure_slice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failure_slice_project_id'))
    op.drop_table('failure_slice')
