"""project settings

``project_setting`` holds per-project settings every server must agree on, one row per
(project, key) with a JSON value; the first is the project's backbone. Existing projects
get none: their backbone is chosen and recorded the next time they are opened.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('project_setting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_project_setting_project_id_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_setting')),
    sa.UniqueConstraint('project_id', 'key', name=op.f('uq_project_setting_project_id_key'))
    )


def downgrade() -> None:
    op.drop_table('project_setting')
