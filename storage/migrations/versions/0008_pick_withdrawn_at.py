"""pick withdrawn_at

A pick of the Triage "Label these next" queue (source ``triage``) waits to be asked
until its item is labeled or it is withdrawn: ``withdrawn_at`` is when the queue was
cleared or headless ``select`` handed the image out. The pick itself stays: it is the
record that the image was queued. Every existing pick gets NULL (still waiting where
it is a queued pick whose item has no label, as before).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawn_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pick', schema=None) as batch_op:
        batch_op.drop_column('withdrawn_at')
