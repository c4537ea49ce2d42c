"""derived tables without foreign keys: the projection and rollups skip per-row checks

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 07:00:00

``deals`` and the four rollup tables are rebuilt from the event log (``rebuild_rollups``)
and written only by ingest and that rebuild, with branch and rep ids ingest has just
read under the branch's lock; org units and reps are never deleted (a unit closes with
``active_to``). Their foreign keys fired a check per written row, several thousand a
push: about a fifth of PostgreSQL's time per event. The event log keeps its own.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (table, constraint, column, referenced table)
FOREIGN_KEYS = [
    ("deals", "fk_deals_branch_id_org_units", "branch_id", "org_units"),
    ("deals", "fk_deals_rep_id_reps", "rep_id", "reps"),
    ("daily_rollups", "fk_daily_rollups_branch_id_org_units", "branch_id", "org_units"),
    ("daily_rollups", "fk_daily_rollups_rep_id_reps", "rep_id", "reps"),
    ("weekly_rollups", "fk_weekly_rollups_branch_id_org_units", "branch_id", "org_units"),
    ("weekly_rollups", "fk_weekly_rollups_rep_id_reps", "rep_id", "reps"),
    ("unit_rollups", "fk_unit_rollups_unit_id_org_units", "unit_id", "org_units"),
    (
        "weekly_unit_rollups",
        "fk_weekly_unit_rollups_unit_id_org_units",
        "unit_id",
        "org_units",
    ),
]


def upgrade():
    for table, name, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade():
    for table, name, column, referred in FOREIGN_KEYS:
        op.create_foreign_key(name, table, referred, [column], ["id"])
