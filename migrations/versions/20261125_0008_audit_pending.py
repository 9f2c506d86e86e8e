"""The audit queue: entries written by the acting transaction, chained later by the worker.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 02:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    """Create audit_pending (rows are deleted once services.audit.seal_pending has chained them)."""
    op.create_table('audit_pending',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_pending'))
    )


def downgrade():
    """Remove the queue (entries still in it are lost: run ``flask audit seal`` first)."""
    op.drop_table('audit_pending')
