"""merge the accounts, leases-and-review and failure-slices branches

Those three migrations were written side by side on top of 0002 and touch disjoint
tables; this revision joins them so the schema has one head again.

Revision ID: 0006
Revises: 0003, 0004, 0005
Create Date: 2026-11-26 12:45:00
"""


revision = '0006'
down_revision = ('0003', '0004', '0005')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
