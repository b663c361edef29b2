"""change notices for the polling path's revalidation cache (PostgreSQL only)

Triggers on projects, jobs, parts and tokens send `pg_notify('osc_changes', <project id>)` after a change commits
(`'*'` for a token change: a token guards many projects), and `'#queue'` when a job enters or leaves the queue or
moves in it (every queued project's place may have changed). `db.changes.ChangeFeed` listens; see its docstring.
SQLite has no notifications: there every revalidation reads the database (it is a one-process deployment).

Revision ID: 0004
Revises: 0003
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION osc_changes_notify() RETURNS trigger AS $$
DECLARE
  changed text;
BEGIN
  IF TG_TABLE_NAME = 'tokens' THEN
    changed := '*';
  ELSIF TG_TABLE_NAME = 'projects' THEN
    changed := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
  ELSE
    changed := CASE WHEN TG_OP = 'DELETE' THEN OLD.project_id ELSE NEW.project_id END;
    IF TG_OP = 'UPDATE' AND OLD.project_id IS DISTINCT FROM NEW.project_id THEN
      PERFORM pg_notify('osc_changes', OLD.project_id);
    END IF;
  END IF;
  PERFORM pg_notify('osc_changes', changed);
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""

JOB_FUNCTION = """
CREATE OR REPLACE FUNCTION osc_changes_notify_job() RETURNS trigger AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('osc_changes', OLD.project_id);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('osc_changes', NEW.project_id);
  END IF;
  IF (TG_OP = 'INSERT' AND NEW.status = 'queued') OR (TG_OP = 'DELETE' AND OLD.status = 'queued') THEN
    PERFORM pg_notify('osc_changes', '#queue');
  ELSIF TG_OP = 'UPDATE' AND (OLD.status = 'queued' OR NEW.status = 'queued') AND (
      OLD.status IS DISTINCT FROM NEW.status OR OLD.priority IS DISTINCT FROM NEW.priority OR
      OLD.queued_at IS DISTINCT FROM NEW.queued_at) THEN
    PERFORM pg_notify('osc_changes', '#queue');
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(JOB_FUNCTION)
    for table in ("projects", "parts"):
        op.execute(f"CREATE TRIGGER osc_changes AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION osc_changes_notify()")
    op.execute("CREATE TRIGGER osc_changes AFTER INSERT OR UPDATE OR DELETE ON jobs "
               "FOR EACH ROW EXECUTE FUNCTION osc_changes_notify_job()")
    # a new token guards no project yet
    op.execute("CREATE TRIGGER osc_changes AFTER UPDATE OR DELETE ON tokens "
               "FOR EACH ROW EXECUTE FUNCTION osc_changes_notify()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("projects", "jobs", "parts", "tokens"):
        op.execute(f"DROP TRIGGER IF EXISTS osc_changes ON {table}")
    op.execute("DROP FUNCTION IF EXISTS osc_changes_notify()")
    op.execute("DROP FUNCTION IF EXISTS osc_changes_notify_job()")
