"""weekly rollups: the daily rollups summed per week, beside them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 03:30:00

Reports over a month or a quarter read one row per whole week (and daily rows for the
days at the period's ends) instead of one per day. Ingest, the rebuild and the stripe
folding keep them equal to the daily rows from now on; this fills them for the rows
stored so far.
"""

import sqlalchemy as sa
from alembic import op

from hq_server.metrics.weeks import FILL_WEEKLY, FILL_WEEKLY_UNITS

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

VACUUM_SOONER = {
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_insert_scale_factor": "0.02",
}


def _value():
    return sa.Column("value", sa.Numeric(precision=20, scale=2), nullable=False)


def upgrade():
    op.create_table(
        "weekly_rollups",
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        _value(),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["org_units.id"], name=op.f("fk_weekly_rollups_branch_id_org_units")
        ),
        sa.ForeignKeyConstraint(
            ["rep_id"], ["reps.id"], name=op.f("fk_weekly_rollups_rep_id_reps")
        ),
        sa.PrimaryKeyConstraint(
            "branch_id",
            "week",
            "rep_id",
            "metric",
            name=op.f("pk_weekly_rollups"),
            postgresql_include=["value"],
        ),
        postgresql_with=VACUUM_SOONER,
    )
    op.create_table(
        "weekly_unit_rollups",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), nullable=False),
        _value(),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["org_units.id"], name=op.f("fk_weekly_unit_rollups_unit_id_org_units")
        ),
        sa.PrimaryKeyConstraint(
            "unit_id",
            "week",
            "metric",
            "stripe",
            name=op.f("pk_weekly_unit_rollups"),
            postgresql_include=["value"],
        ),
        postgresql_with=VACUUM_SOONER,
    )
    op.execute(FILL_WEEKLY)
    op.execute(FILL_WEEKLY_UNITS)


def downgrade():
    op.drop_table("weekly_unit_rollups")
    op.drop_table("weekly_rollups")
