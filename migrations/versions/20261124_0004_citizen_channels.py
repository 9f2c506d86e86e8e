"""Citizen channels: inbound updates, conversations, media to fetch, Open311 keys, reply templates, feedback.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:45:04.537093

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    """Add the channel tables and the Open311 columns of appeal; citizen email."""
    op.create_table('conversation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('handle', sa.String(length=128), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation')),
    sa.UniqueConstraint('channel', 'handle', name='uq_conversation_channel_handle')
    )
    op.create_table('api_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'], name=op.f('fk_api_key_created_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_key_key_hash'))
    )
    op.create_table('reply_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('moment', sa.String(length=32), nullable=False),
    sa.Column('appeal_type', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['updated_by_id'], ['staff.id'], name=op.f('fk_reply_template_updated_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_template')),
    sa.UniqueConstraint('moment', 'appeal_type', 'language', name='uq_reply_template_key')
    )
    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("verdict IN ('confirm', 'dispute')", name=op.f('ck_feedback_verdict')),
    sa.CheckConstraint('rating IS NULL OR (rating >= 1 AND rating <= 5)', name=op.f('ck_feedback_rating')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_feedback_appeal_id_appeal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    op.create_index(op.f('ix_feedback_appeal_id'), 'feedback', ['appeal_id'], unique=False)
    op.create_table('inbound_update',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('provider_id', sa.String(length=128), nullable=False),
    sa.Column('sender', sa.String(length=128), nullable=True),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_inbound_update_appeal_id_appeal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_update')),
    sa.UniqueConstraint('channel', 'provider_id', name='uq_inbound_update_channel_provider_id')
    )
    op.create_index(op.f('ix_inbound_update_appeal_id'), 'inbound_update', ['appeal_id'], unique=False)
    op.create_table('media_fetch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('media_ref', sa.String(length=512), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('attachment_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('pending', 'sending', 'sent', 'dead')", name=op.f('ck_media_fetch_state')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_media_fetch_appeal_id_appeal')),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachment.id'], name=op.f('fk_media_fetch_attachment_id_attachment')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_media_fetch_conversation_id_conversation'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_fetch'))
    )
    op.create_index(op.f('ix_media_fetch_appeal_id'), 'media_fetch', ['appeal_id'], unique=False)
    op.create_index('ix_media_fetch_due', 'media_fetch', ['state', 'next_attempt_at'], unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite can add a column with an inline REFERENCES, but cannot add the constraint afterwards.
        op.execute('ALTER TABLE appeal ADD COLUMN api_key_id INTEGER '
                   'CONSTRAINT fk_appeal_api_key_id_api_key REFERENCES api_key (id)')
    else:
        op.add_column('appeal', sa.Column('api_key_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_appeal_api_key_id_api_key'), 'appeal', 'api_key', ['api_key_id'], ['id'])
    op.add_column('appeal', sa.Column('device_id', sa.String(length=128), nullable=True))
    op.add_column('appeal', sa.Column('attributes', sa.JSON(), nullable=True))
    op.add_column('appeal', sa.Column('media_url', sa.String(length=1024), nullable=True))
    op.add_column('citizen', sa.Column('email', sa.String(length=254), nullable=True))


def downgrade():
    """Remove what upgrade added."""
    op.drop_column('citizen', 'email')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('fk_appeal_api_key_id_api_key'), 'appeal', type_='foreignkey')
    op.drop_column('appeal', 'media_url')
    op.drop_column('appeal', 'attributes')
    op.drop_column('appeal', 'device_id')
    op.drop_column('appeal', 'api_key_id')
    op.drop_index('ix_media_fetch_due', table_name='media_fetch')
    op.drop_index(op.f('ix_media_fetch_appeal_id'), table_name='media_fetch')
    op.drop_table('media_fetch')
    op.drop_index(op.f('ix_inbound_update_appeal_id'), table_name='inbound_update')
    op.drop_table('inbound_update')
    op.drop_index(op.f('ix_feedback_appeal_id'), table_name='feedback')
    op.drop_table('feedback')
    op.drop_table('reply_template')
    op.drop_table('api_key')
    op.drop_table('conversation')
