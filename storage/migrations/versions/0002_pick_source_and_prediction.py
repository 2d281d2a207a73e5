"""pick source and prediction

Each pick records the rule that chose it (``source``: the strategy, ``discovery``,
``cold_start`` or ``audit``) and the probe's prediction at ask time (``predicted``:
a list of label class ids, empty without a probe). Audit picks answered later give
the unbiased accuracy of the model version named by their selection run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=False, server_default='strategy'))
        batch_op.add_column(sa.Column('predicted', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.drop_column('predicted')
        batch_op.drop_column('source')
