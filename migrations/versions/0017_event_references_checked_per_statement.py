"""event references checked per statement: one set-based check instead of two per row

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 06:50:00

The event log's foreign keys to ``org_units`` and ``reps`` ran two referential checks for
every stored event (each a locking lookup of the referenced row): about a third of the
events insert, the largest write of a push. The same guarantee is now kept per statement:

* a statement that inserts or updates events fails (``foreign_key_violation``) unless every
  branch and rep it names exists, checked once over the statement's rows (a transition
  table), where a push names one branch and a few reps;
* deleting an org unit or a rep that events name fails the same way (the app never deletes
  either: units close with ``active_to``).
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

CHECK_EVENTS = """
CREATE FUNCTION events_name_known_units() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT branch_id FROM changed_events) e
               WHERE NOT EXISTS (SELECT 1 FROM org_units o WHERE o.id = e.branch_id))
    OR EXISTS (SELECT 1 FROM (SELECT DISTINCT rep_id FROM changed_events
                              WHERE rep_id IS NOT NULL) e
               WHERE NOT EXISTS (SELECT 1 FROM reps r WHERE r.id = e.rep_id)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'an event names a branch or a rep that does not exist';
    END IF;
    RETURN NULL;
END $$
"""

CHECK_DELETED = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM events e JOIN deleted_rows d ON d.id = e.{column}) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'events name this {what}; close it instead of deleting it';
    END IF;
    RETURN NULL;
END $$
"""

DELETED = [
    ("org_units", "org_units_not_named_by_events", "branch_id", "org unit"),
    ("reps", "reps_not_named_by_events", "rep_id", "rep"),
]


def upgrade():
    op.drop_constraint("fk_events_branch_id_org_units", "events", type_="foreignkey")
    op.drop_constraint("fk_events_rep_id_reps", "events", type_="foreignkey")
    op.execute(CHECK_EVENTS)
    for when in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER events_name_known_units_{when.lower()} AFTER {when} ON events "
            "REFERENCING NEW TABLE AS changed_events FOR EACH STATEMENT "
            "EXECUTE FUNCTION events_name_known_units()"
        )
    for table, name, column, what in DELETED:
        op.execute(CHECK_DELETED.format(name=name, column=column, what=what))
        op.execute(
            f"CREATE TRIGGER {name} AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def downgrade():
    for table, name, _, _ in DELETED:
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(f"DROP FUNCTION {name}()")
    for when in ("insert", "update"):
        op.execute(f"DROP TRIGGER events_name_known_units_{when} ON events")
    op.execute("DROP FUNCTION events_name_known_units()")
    op.create_foreign_key("fk_events_branch_id_org_units", "events", "org_units", ["branch_id"], ["id"])
    op.create_foreign_key("fk_events_rep_id_reps", "events", "reps", ["rep_id"], ["id"])
