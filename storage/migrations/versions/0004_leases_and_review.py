"""leases and review tasks

``item_lease``: who may label an item now, at most one primary and one overlap holder
per item (unique ``item_id, overlap``). ``review_task``: one row per item whose overlap
labels disagree, with the reviewer's decision (an annotation with source ``review``).

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('item_lease',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('overlap', sa.Boolean(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('leased_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('labeled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_item_lease_annotator_id_annotator')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_item_lease_item_id_item')),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_item_lease_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_lease')),
    sa.UniqueConstraint('item_id', 'overlap', name=op.f('uq_item_lease_item_id_overlap'))
    )
    with op.batch_alter_table('item_lease', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_lease_project_id'), ['project_id'], unique=False)

    op.create_table('review_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('decision_annotation_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['decision_annotation_id'], ['annotation.id'], name=op.f('fk_review_task_decision_annotation_id_annotation')),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_review_task_item_id_item')),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_review_task_project_id_project')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['annotator.id'], name=op.f('fk_review_task_reviewer_id_annotator')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_task')),
    sa.UniqueConstraint('item_id', name=op.f('uq_review_task_item_id'))
    )
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_task_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_task_project_id'))

    op.drop_table('review_task')
    with op.batch_alter_table('item_lease', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_lease_project_id'))

    op.drop_table('item_lease')
