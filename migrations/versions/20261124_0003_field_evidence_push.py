"""Field resolution: photo evidence, replayed client actions, Web Push subscriptions, the outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:32:21.040838

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    """Add attachments, client actions, push subscriptions, the outbound messages; flag columns on appeal."""
    op.create_table('attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('mime', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('device_lat', sa.Float(), nullable=True),
    sa.Column('device_lon', sa.Float(), nullable=True),
    sa.Column('device_accuracy_m', sa.Float(), nullable=True),
    sa.Column('device_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exif_lat', sa.Float(), nullable=True),
    sa.Column('exif_lon', sa.Float(), nullable=True),
    sa.Column('exif_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exif_distance_m', sa.Float(), nullable=True),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('before', 'after', 'citizen')", name=op.f('ck_attachment_kind')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_attachment_appeal_id_appeal')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['staff.id'], name=op.f('fk_attachment_uploaded_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment')),
    sa.UniqueConstraint('public_id', name=op.f('uq_attachment_public_id'))
    )
    op.create_index('ix_attachment_appeal_kind', 'attachment', ['appeal_id', 'kind'], unique=False)
    op.create_index(op.f('ix_attachment_sha256'), 'attachment', ['sha256'], unique=False)
    op.create_table('client_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_uuid', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_client_action_appeal_id_appeal')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_client_action_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_action')),
    sa.UniqueConstraint('client_uuid', name=op.f('uq_client_action_client_uuid'))
    )
    op.create_index(op.f('ix_client_action_staff_id'), 'client_action', ['staff_id'], unique=False)
    op.create_table('push_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('endpoint', sa.String(length=1024), nullable=False),
    sa.Column('p256dh', sa.String(length=200), nullable=False),
    sa.Column('auth', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_push_subscription_staff_id_staff')),
    sa.ForeignKeyConstraint(['token_id'], ['api_token.id'], name=op.f('fk_push_subscription_token_id_api_token'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscription')),
    sa.UniqueConstraint('endpoint', name=op.f('uq_push_subscription_endpoint'))
    )
    op.create_index(op.f('ix_push_subscription_staff_id'), 'push_subscription', ['staff_id'], unique=False)
    op.create_index(op.f('ix_push_subscription_token_id'), 'push_subscription', ['token_id'], unique=False)
    op.create_table('outbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('dedupe_key', sa.String(length=160), nullable=True),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'sending', 'sent', 'dead')", name=op.f('ck_outbound_message_state')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_outbound_message_appeal_id_appeal')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_outbound_message_staff_id_staff')),
    sa.ForeignKeyConstraint(['subscription_id'], ['push_subscription.id'], name=op.f('fk_outbound_message_subscription_id_push_subscription'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_message')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbound_message_dedupe_key'))
    )
    op.create_index('ix_outbound_message_due', 'outbound_message', ['state', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_outbound_message_subscription_id'), 'outbound_message', ['subscription_id'], unique=False)
    op.add_column('appeal', sa.Column('flagged_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appeal', sa.Column('sla_warned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_appeal_flagged_at'), 'appeal', ['flagged_at'], unique=False)


def downgrade():
    """Remove what upgrade added."""
    op.drop_index(op.f('ix_appeal_flagged_at'), table_name='appeal')
    op.drop_column('appeal', 'sla_warned_at')
    op.drop_column('appeal', 'flagged_at')
    op.drop_index(op.f('ix_outbound_message_subscription_id'), table_name='outbound_message')
    op.drop_index('ix_outbound_message_due', table_name='outbound_message')
    op.drop_table('outbound_message')
    op.drop_index(op.f('ix_push_subscription_token_id'), table_name='push_subscription')
    op.drop_index(op.f('ix_push_subscription_staff_id'), table_name='push_subscription')
    op.drop_table('push_subscription')
    op.drop_index(op.f('ix_client_action_staff_id'), table_name='client_action')
    op.drop_table('client_action')
    op.drop_index(op.f('ix_attachment_sha256'), table_name='attachment')
    op.drop_index('ix_attachment_appeal_kind', table_name='attachment')
    op.drop_table('attachment')
