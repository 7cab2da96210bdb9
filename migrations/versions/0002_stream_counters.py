"""stream counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:31:23.762765
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stream_counters',
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('committed_batches', sa.Integer(), nullable=False),
    sa.Column('skipped_ranges', sa.Integer(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('corrupted', sa.BigInteger(), nullable=False),
    sa.Column('issue_counts', sa.JSON(), nullable=True),
    sa.Column('last_interval_end', sa.BigInteger(), nullable=True),
    sa.Column('last_finished_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('stream', name=op.f('pk_stream_counters'))
    )
    # Seed the counters of an existing ledger (per-type defect counts start from zero).
    op.execute(
        "INSERT INTO stream_counters (stream, committed_batches, skipped_ranges, records, corrupted, "
        "issue_counts, last_interval_end, last_finished_at) "
        "SELECT stream, SUM(status = 'committed'), SUM(status = 'skipped'), "
        "SUM(CASE WHEN status = 'committed' THEN record_count ELSE 0 END), "
        "SUM(CASE WHEN status = 'committed' THEN corrupted_count ELSE 0 END), '{}', "
        "MAX(CASE WHEN status = 'committed' THEN interval_end END), "
        "MAX(CASE WHEN status = 'committed' THEN finished_at END) FROM batches GROUP BY stream"
    )


def downgrade() -> None:
    op.drop_table('stream_counters')
