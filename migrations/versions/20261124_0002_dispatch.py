"""Live dispatch: the four shifts, who is on duty, staff positions, assignment and escalation times.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:43:30.071496

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    """Add shifts, duty state, positions; seed the four shifts."""
    op.create_table('shift',
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('name_kk', sa.String(length=80), nullable=False),
    sa.Column('name_ru', sa.String(length=80), nullable=False),
    sa.Column('name_en', sa.String(length=80), nullable=False),
    sa.Column('starts_at', sa.String(length=5), nullable=False),
    sa.Column('hours', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_shift'))
    )
    op.create_table('position_fix',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_position_fix_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_position_fix'))
    )
    op.create_index(op.f('ix_position_fix_received_at'), 'position_fix', ['received_at'], unique=False)
    op.create_index('ix_position_fix_staff_time', 'position_fix', ['staff_id', 'recorded_at'], unique=False)
    op.create_geospatial_table('staff_position',
    sa.Column('staff_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_position_staff_id_staff')),
    sa.PrimaryKeyConstraint('staff_id', name=op.f('pk_staff_position'))
    )
    op.add_column('appeal', sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appeal', sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('staff', sa.Column('shift_code', sa.String(length=8), nullable=True))
    op.add_column('staff', sa.Column('on_duty', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('staff', sa.Column('duty_changed_at', sa.DateTime(timezone=True), nullable=True))
    _seed_shifts()


def downgrade():
    """Remove what upgrade added."""
    op.drop_column('staff', 'duty_changed_at')
    op.drop_column('staff', 'on_duty')
    op.drop_column('staff', 'shift_code')
    op.drop_column('appeal', 'escalated_at')
    op.drop_column('appeal', 'assigned_at')
    op.drop_geospatial_table('staff_position')
    op.drop_index('ix_position_fix_staff_time', table_name='position_fix')
    op.drop_index(op.f('ix_position_fix_received_at'), table_name='position_fix')
    op.drop_table('position_fix')
    op.drop_table('shift')


def _seed_shifts():
    # 41 centre staff in 4 shifts, around the clock: two day and two night crews of 12 hours in rotation.
    shift = sa.table("shift", sa.column("code"), sa.column("name_kk"), sa.column("name_ru"), sa.column("name_en"),
                     sa.column("starts_at"), sa.column("hours"))
    op.bulk_insert(shift, [
        {"code": "A", "name_kk": "1-ауысым (күндізгі)", "name_ru": "Смена 1 (дневная)", "name_en": "Shift 1 (day)",
         "starts_at": "08:00", "hours": 12},
        {"code": "B", "name_kk": "2-ауысым (түнгі)", "name_ru": "Смена 2 (ночная)", "name_en": "Shift 2 (night)",
         "starts_at": "20:00", "hours": 12},
        {"code": "C", "name_kk": "3-ауысым (күндізгі)", "name_ru": "Смена 3 (дневная)", "name_en": "Shift 3 (day)",
         "starts_at": "08:00", "hours": 12},
        {"code": "D", "name_kk": "4-ауысым (түнгі)", "name_ru": "Смена 4 (ночная)", "name_en": "Shift 4 (night)",
         "starts_at": "20:00", "hours": 12},
    ])
