"""Audit log (append-only, hash-chained) and the quality-control call-back sample.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 00:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    """Create audit_entry (UPDATE/DELETE/TRUNCATE refused on PostgreSQL) and qc_callback."""
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_entry_hash'))
    )
    op.create_index(op.f('ix_audit_entry_action'), 'audit_entry', ['action'], unique=False)
    op.create_index(op.f('ix_audit_entry_actor_id'), 'audit_entry', ['actor_id'], unique=False)
    op.create_index(op.f('ix_audit_entry_at'), 'audit_entry', ['at'], unique=False)
    op.create_index('ix_audit_entry_object', 'audit_entry', ['object_type', 'object_id'], unique=False)
    op.create_table('qc_callback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('sampled_on', sa.Date(), nullable=False),
    sa.Column('sampled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_by', sa.Integer(), nullable=True),
    sa.Column('reached', sa.Boolean(), nullable=True),
    sa.Column('satisfied', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.CheckConstraint('satisfied IS NULL OR (satisfied >= 1 AND satisfied <= 5)',
                       name=op.f('ck_qc_callback_satisfied')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_qc_callback_appeal_id_appeal')),
    sa.ForeignKeyConstraint(['recorded_by'], ['staff.id'], name=op.f('fk_qc_callback_recorded_by_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_callback')),
    sa.UniqueConstraint('appeal_id', name='uq_qc_callback_appeal')
    )
    op.create_index(op.f('ix_qc_callback_sampled_on'), 'qc_callback', ['sampled_on'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # Like appeal_event (0001): the log is append-only even for SQL typed by hand. A superuser can still
        # disable the triggers, which is why production runs the app as a role without UPDATE/DELETE here.
        op.execute("""
            CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_entry is append-only (% refused)', TG_OP;
            END $$;
        """)
        op.execute("""
            CREATE TRIGGER audit_entry_no_update_delete BEFORE UPDATE OR DELETE ON audit_entry
            FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
        """)
        op.execute("""
            CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
            FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only();
        """)
        # Nobody gets these by default; the owner (the migration role) keeps its implicit rights.
        op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_entry FROM PUBLIC")
    else:
        op.execute("""
            CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
            BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END;
        """)
        op.execute("""
            CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
            BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END;
        """)


def downgrade():
    """Remove what upgrade added."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update_delete ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    op.drop_index(op.f('ix_qc_callback_sampled_on'), table_name='qc_callback')
    op.drop_table('qc_callback')
    op.drop_index('ix_audit_entry_object', table_name='audit_entry')
    op.drop_index(op.f('ix_audit_entry_at'), table_name='audit_entry')
    op.drop_index(op.f('ix_audit_entry_actor_id'), table_name='audit_entry')
    op.drop_index(op.f('ix_audit_entry_action'), table_name='audit_entry')
    op.drop_table('audit_entry')
