"""claim owner and publish lateness

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('published_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('lateness_ms', sa.Float(), nullable=True))
        batch.add_column(sa.Column('catch_up', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.drop_column('catch_up')
        batch.drop_column('lateness_ms')
        batch.drop_column('published_at')
        batch.drop_column('owner')
