"""remembered sign-ins

A browser that signed in with a password keeps a random token in a cookie;
``remembered_sign_in`` holds the token's SHA-256, its account, expiry and revocation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 15:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('remembered_sign_in',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_remembered_sign_in_annotator_id_annotator')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remembered_sign_in')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_remembered_sign_in_token_sha256'))
    )
    with op.batch_alter_table('remembered_sign_in', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remembered_sign_in_annotator_id'), ['annotator_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('remembered_sign_in', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remembered_sign_in_annotator_id'))
    op.drop_table('remembered_sign_in')
