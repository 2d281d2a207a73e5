"""accounts

The ``annotator`` row becomes the account: a role (admin, reviewer or annotator), an
Argon2id password hash, an OIDC email and the time it was disabled. Rows that labeling
made before get the annotator role and no password: nobody signs in as them until an
admin sets one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotator', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.Enum('admin', 'reviewer', 'annotator', name='role', native_enum=False,
                                                      length=16), nullable=False, server_default='annotator'))
        batch_op.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_annotator_email'), ['email'])


def downgrade() -> None:
    with op.batch_alter_table('annotator', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_annotator_email'), type_='unique')
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('email')
        batch_op.drop_column('password_hash')
        batch_op.drop_column('role')
