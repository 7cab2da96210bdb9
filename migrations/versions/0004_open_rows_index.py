"""index the ledger's open rows

Every wake-up asks for a stream's claimed or failed windows; without an index on the status that
read scanned the stream's whole history (26 ms per call at 100,000 windows, two calls per driver
batch), so lateness grew with the age of the data directory.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.create_index('ix_batches_stream_status_end', ['stream', 'status', 'interval_end'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.drop_index('ix_batches_stream_status_end')
