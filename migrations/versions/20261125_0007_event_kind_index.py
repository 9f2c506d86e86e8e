"""An index on appeal_event (kind, appeal_id) for the analytics queries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 00:30:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    """Add the index (the dashboard's timeliness query reads events by kind)."""
    op.create_index('ix_appeal_event_kind_appeal', 'appeal_event', ['kind', 'appeal_id'], unique=False)


def downgrade():
    """Remove the index."""
    op.drop_index('ix_appeal_event_kind_appeal', table_name='appeal_event')
