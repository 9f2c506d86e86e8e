"""The audit queue keeps what it holds: a pending entry leaves only once the chain holds it.

The app's role needs DELETE on audit_pending (the sealer removes what it chained), which
left a window of a second or two in which an unchained entry could be deleted or, by the
owner, edited. Triggers now refuse UPDATE and TRUNCATE, and refuse a DELETE unless
``audit_entry`` already holds an entry with the same content (the sealer inserts into the
chain before it deletes, in one transaction). Deleting through the chain therefore
records the entry; nothing can make it vanish.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 10:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The same content, null-safe: every column the hash covers except the chain's own (id, prev_hash, hash).
PG_MATCH = """
    e.at = OLD.at AND e.action = OLD.action AND e.actor_kind = OLD.actor_kind
    AND e.actor_id IS NOT DISTINCT FROM OLD.actor_id AND e.actor_name IS NOT DISTINCT FROM OLD.actor_name
    AND e.object_type IS NOT DISTINCT FROM OLD.object_type AND e.object_id IS NOT DISTINCT FROM OLD.object_id
    AND e.data::jsonb = OLD.data::jsonb
"""
SQLITE_MATCH = """
    e.at = OLD.at AND e.action = OLD.action AND e.actor_kind = OLD.actor_kind
    AND e.actor_id IS OLD.actor_id AND e.actor_name IS OLD.actor_name
    AND e.object_type IS OLD.object_type AND e.object_id IS OLD.object_id
    AND json(e.data) = json(OLD.data)
"""
MESSAGE = "audit_pending: an entry leaves the queue only once audit_entry holds it"


def upgrade():
    """Guard audit_pending with triggers (PostgreSQL and SQLite)."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION audit_pending_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    IF EXISTS (SELECT 1 FROM audit_entry e WHERE {PG_MATCH}) THEN
                        RETURN OLD;
                    END IF;
                    RAISE EXCEPTION '{MESSAGE} (unchained entry %)', OLD.id;
                END IF;
                RAISE EXCEPTION 'audit_pending is append-only until sealed (% refused)', TG_OP;
            END $$;
        """)  # noqa: S608 (module constants only, no input)
        op.execute("""
            CREATE TRIGGER audit_pending_guard BEFORE UPDATE OR DELETE ON audit_pending
            FOR EACH ROW EXECUTE FUNCTION audit_pending_guard();
        """)
        op.execute("""
            CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
            FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_guard();
        """)
        op.execute("REVOKE UPDATE, TRUNCATE ON audit_pending FROM PUBLIC")
    else:
        op.execute(f"""
            CREATE TRIGGER audit_pending_no_unchained_delete BEFORE DELETE ON audit_pending
            WHEN NOT EXISTS (SELECT 1 FROM audit_entry e WHERE {SQLITE_MATCH})
            BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
        """)  # noqa: S608 (module constants only, no input)
        op.execute("""
            CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
            BEGIN SELECT RAISE(ABORT, 'audit_pending is append-only until sealed'); END;
        """)


def downgrade():
    """Remove the guard."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_pending_no_truncate ON audit_pending")
        op.execute("DROP TRIGGER IF EXISTS audit_pending_guard ON audit_pending")
        op.execute("DROP FUNCTION IF EXISTS audit_pending_guard()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_pending_no_unchained_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_pending_no_update")
