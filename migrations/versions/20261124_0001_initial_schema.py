"""Initial schema: appeals with append-only history, sectors, staff, citizens, the topic catalogue.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 20:16:38.385211

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    """Create the tables, seed the topics, and make appeal_event append-only."""
    op.create_table('citizen',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('handle', sa.String(length=128), nullable=True),
    sa.Column('name', sa.String(length=160), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consent_version', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_citizen')),
    sa.UniqueConstraint('channel', 'handle', name='uq_citizen_channel_handle')
    )
    op.create_table('reg_counter',
    sa.Column('prefix', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('prefix', 'year', name=op.f('pk_reg_counter'))
    )
    op.create_table('sector_set',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('loaded_by', sa.String(length=80), nullable=True),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_sector_set'))
    )
    op.create_table('topic',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_kk', sa.String(length=120), nullable=False),
    sa.Column('name_ru', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_topic'))
    )
    op.create_table('unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name_kk', sa.String(length=120), nullable=False),
    sa.Column('name_ru', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit')),
    sa.UniqueConstraint('code', name=op.f('uq_unit_code'))
    )
    op.create_geospatial_table('sector',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name_kk', sa.String(length=120), nullable=False),
    sa.Column('name_ru', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('area_m2', sa.Float(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_sector_unit_id_unit')),
    sa.ForeignKeyConstraint(['version'], ['sector_set.version'], name=op.f('fk_sector_version_sector_set')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sector')),
    sa.UniqueConstraint('version', 'code', name='uq_sector_version_code')
    )
    op.create_geospatial_index('idx_sector_geom', 'sector', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_sector_code'), 'sector', ['code'], unique=False)
    op.create_index(op.f('ix_sector_unit_id'), 'sector', ['unit_id'], unique=False)
    op.create_index(op.f('ix_sector_version'), 'sector', ['version'], unique=False)
    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=160), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('auth_epoch', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("language IN ('kk', 'ru', 'en')", name=op.f('ck_staff_language')),
    sa.CheckConstraint("role IN ('admin', 'operator', 'dispatcher', 'inspector', 'qc_analyst', 'analyst', 'methodologist', 'pr_manager', 'unit_head', 'field_staff')", name=op.f('ck_staff_role')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_staff_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_username'))
    )
    op.create_index(op.f('ix_staff_unit_id'), 'staff', ['unit_id'], unique=False)
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('auth_epoch', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_api_token_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_index(op.f('ix_api_token_staff_id'), 'api_token', ['staff_id'], unique=False)
    op.create_geospatial_table('appeal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reg_no', sa.String(length=32), nullable=False),
    sa.Column('tracking_token', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('topic_code', sa.String(length=32), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('sector_id', sa.Integer(), nullable=True),
    sa.Column('route_method', sa.String(length=16), nullable=True),
    sa.Column('route_distance_m', sa.Float(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answer_text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("channel IN ('phone', 'web', 'telegram', 'whatsapp', 'instagram', 'facebook', 'open311')", name=op.f('ck_appeal_channel')),
    sa.CheckConstraint("status IN ('registered', 'routed', 'unrouted', 'assigned', 'accepted', 'en_route', 'on_site', 'resolved', 'verified', 'answered', 'closed', 'reopened', 'rejected', 'duplicate', 'forwarded')", name=op.f('ck_appeal_status')),
    sa.CheckConstraint("type IN ('consultation', 'incident', 'proposal', 'complaint', 'gratitude')", name=op.f('ck_appeal_type')),
    sa.CheckConstraint("urgency IS NULL OR urgency IN ('emergency', 'urgent', 'normal')", name=op.f('ck_appeal_urgency')),
    sa.ForeignKeyConstraint(['assignee_id'], ['staff.id'], name=op.f('fk_appeal_assignee_id_staff')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], name=op.f('fk_appeal_citizen_id_citizen')),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'], name=op.f('fk_appeal_created_by_id_staff')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['appeal.id'], name=op.f('fk_appeal_duplicate_of_id_appeal')),
    sa.ForeignKeyConstraint(['sector_id'], ['sector.id'], name=op.f('fk_appeal_sector_id_sector')),
    sa.ForeignKeyConstraint(['topic_code'], ['topic.code'], name=op.f('fk_appeal_topic_code_topic')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_appeal_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_appeal_idempotency_key')),
    sa.UniqueConstraint('reg_no', name=op.f('uq_appeal_reg_no')),
    sa.UniqueConstraint('tracking_token', name=op.f('uq_appeal_tracking_token'))
    )
    op.create_geospatial_index('idx_appeal_location', 'appeal', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_appeal_assignee_id'), 'appeal', ['assignee_id'], unique=False)
    op.create_index(op.f('ix_appeal_citizen_id'), 'appeal', ['citizen_id'], unique=False)
    op.create_index('ix_appeal_status_sector', 'appeal', ['status', 'sector_id'], unique=False)
    op.create_index('ix_appeal_topic_status', 'appeal', ['topic_code', 'status'], unique=False)
    op.create_index(op.f('ix_appeal_unit_id'), 'appeal', ['unit_id'], unique=False)
    op.create_index(op.f('ix_appeal_updated_at'), 'appeal', ['updated_at'], unique=False)
    op.create_table('appeal_event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['staff.id'], name=op.f('fk_appeal_event_actor_id_staff')),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], name=op.f('fk_appeal_event_appeal_id_appeal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_event'))
    )
    op.create_index(op.f('ix_appeal_event_appeal_id'), 'appeal_event', ['appeal_id'], unique=False)
    _seed_topics()
    _create_append_only_guards()


def downgrade():
    """Drop everything this revision created."""
    _drop_append_only_guards()
    op.drop_index(op.f('ix_appeal_event_appeal_id'), table_name='appeal_event')
    op.drop_table('appeal_event')
    op.drop_index(op.f('ix_appeal_updated_at'), table_name='appeal')
    op.drop_index(op.f('ix_appeal_unit_id'), table_name='appeal')
    op.drop_index('ix_appeal_topic_status', table_name='appeal')
    op.drop_index('ix_appeal_status_sector', table_name='appeal')
    op.drop_index(op.f('ix_appeal_citizen_id'), table_name='appeal')
    op.drop_index(op.f('ix_appeal_assignee_id'), table_name='appeal')
    op.drop_geospatial_index('idx_appeal_location', table_name='appeal', postgresql_using='gist', column_name='location')
    op.drop_geospatial_table('appeal')
    op.drop_index(op.f('ix_api_token_staff_id'), table_name='api_token')
    op.drop_table('api_token')
    op.drop_index(op.f('ix_staff_unit_id'), table_name='staff')
    op.drop_table('staff')
    op.drop_index(op.f('ix_sector_version'), table_name='sector')
    op.drop_index(op.f('ix_sector_unit_id'), table_name='sector')
    op.drop_index(op.f('ix_sector_code'), table_name='sector')
    op.drop_geospatial_index('idx_sector_geom', table_name='sector', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('sector')
    op.drop_table('unit')
    op.drop_table('topic')
    op.drop_table('sector_set')
    op.drop_table('reg_counter')
    op.drop_table('citizen')


TOPICS = [
    # code, kk, ru, en  (the city's real request topics; most complaints are roads, ЖКХ/ТКШ and social)
    ("roads", "Жолдар", "Дороги", "Roads"),
    ("street_lighting", "Көше жарығы", "Уличное освещение", "Street lighting"),
    ("water_supply", "Сумен жабдықтау", "Водоснабжение", "Water supply"),
    ("sewerage", "Кәріз", "Канализация", "Sewerage"),
    ("heating", "Жылумен жабдықтау", "Теплоснабжение", "Heating"),
    ("gas", "Газбен жабдықтау", "Газоснабжение", "Gas supply"),
    ("waste_collection", "Қоқыс шығару", "Вывоз мусора", "Waste collection"),
    ("landscaping", "Абаттандыру және көгалдандыру", "Благоустройство и озеленение", "Landscaping and greenery"),
    ("public_transport", "Қоғамдық көлік", "Общественный транспорт", "Public transport"),
    ("housing_communal", "Тұрғын үй-коммуналдық шаруашылық (ТКШ)", "Жилищно-коммунальное хозяйство (ЖКХ)",
     "Housing and communal services"),
    ("social_support", "Әлеуметтік қолдау", "Социальная поддержка", "Social support"),
    ("education", "Білім беру", "Образование", "Education"),
    ("health", "Денсаулық сақтау", "Здравоохранение", "Health"),
    ("other", "Басқа", "Другое", "Other"),
]


def _seed_topics():
    topic = sa.table("topic", sa.column("code"), sa.column("name_kk"), sa.column("name_ru"), sa.column("name_en"),
                     sa.column("sort_order"), sa.column("active"))
    op.bulk_insert(topic, [
        {"code": c, "name_kk": kk, "name_ru": ru, "name_en": en, "sort_order": i * 10, "active": True}
        for i, (c, kk, ru, en) in enumerate(TOPICS)
    ])


def _create_append_only_guards():
    # History must not be rewritten, whatever code or person holds a connection.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION appeal_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'appeal_event is append-only (% refused)', TG_OP;
            END $$;
        """)
        op.execute("""
            CREATE TRIGGER appeal_event_no_update_delete BEFORE UPDATE OR DELETE ON appeal_event
            FOR EACH ROW EXECUTE FUNCTION appeal_event_append_only();
        """)
        op.execute("""
            CREATE TRIGGER appeal_event_no_truncate BEFORE TRUNCATE ON appeal_event
            FOR EACH STATEMENT EXECUTE FUNCTION appeal_event_append_only();
        """)
    else:
        op.execute("""
            CREATE TRIGGER appeal_event_no_update BEFORE UPDATE ON appeal_event
            BEGIN SELECT RAISE(ABORT, 'appeal_event is append-only (UPDATE refused)'); END;
        """)
        op.execute("""
            CREATE TRIGGER appeal_event_no_delete BEFORE DELETE ON appeal_event
            BEGIN SELECT RAISE(ABORT, 'appeal_event is append-only (DELETE refused)'); END;
        """)


def _drop_append_only_guards():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS appeal_event_no_truncate ON appeal_event")
        op.execute("DROP TRIGGER IF EXISTS appeal_event_no_update_delete ON appeal_event")
        op.execute("DROP FUNCTION IF EXISTS appeal_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS appeal_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS appeal_event_no_delete")
