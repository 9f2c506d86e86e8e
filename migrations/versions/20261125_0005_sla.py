"""SLA regulation: deadline policies, calendar overrides, the appeal's stored SLA state and clock columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:00:00

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Administrative Procedural Code, Art. 76 defaults; incidents by urgency ("" = any topic / any urgency).
DEFAULT_POLICIES = [
    ('consultation', '', '', 'working_days', 15),
    ('complaint', '', '', 'working_days', 15),
    ('proposal', '', '', 'working_days', 15),
    ('incident', '', '', 'working_days', 3),
    ('incident', '', 'emergency', 'hours', 4),
    ('incident', '', 'urgent', 'hours', 24),
    ('incident', '', 'normal', 'working_days', 3),
    ('gratitude', '', '', 'none', None),
]


def upgrade():
    """Create sla_policy (seeded with the Art. 76 defaults) and calendar_override; add the appeal's SLA columns."""
    policy = op.create_table('sla_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_type', sa.String(length=16), nullable=False),
    sa.Column('topic_code', sa.String(length=32), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("mode = 'none' OR (amount IS NOT NULL AND amount > 0)", name=op.f('ck_sla_policy_amount')),
    sa.CheckConstraint("mode IN ('working_days', 'hours', 'none')", name=op.f('ck_sla_policy_mode')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['staff.id'], name=op.f('fk_sla_policy_updated_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policy')),
    sa.UniqueConstraint('appeal_type', 'topic_code', 'urgency', name='uq_sla_policy_key')
    )
    op.create_table('calendar_override',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('working', 'day_off')", name=op.f('ck_calendar_override_kind')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['staff.id'], name=op.f('fk_calendar_override_updated_by_id_staff')),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_calendar_override'))
    )
    op.add_column('appeal', sa.Column('sla_state', sa.String(length=16), nullable=True))
    op.add_column('appeal', sa.Column('sla_at_risk_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appeal', sa.Column('sla_breached_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appeal', sa.Column('original_due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appeal', sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
    seeded = datetime(2026, 11, 25, tzinfo=UTC)
    op.bulk_insert(policy, [
        {'appeal_type': t, 'topic_code': topic, 'urgency': urgency, 'mode': mode, 'amount': amount,
         'updated_at': seeded}
        for t, topic, urgency, mode, amount in DEFAULT_POLICIES
    ])


def downgrade():
    """Remove what upgrade added."""
    op.drop_column('appeal', 'paused_at')
    op.drop_column('appeal', 'original_due_at')
    op.drop_column('appeal', 'sla_breached_at')
    op.drop_column('appeal', 'sla_at_risk_at')
    op.drop_column('appeal', 'sla_state')
    op.drop_table('calendar_override')
    op.drop_table('sla_policy')
