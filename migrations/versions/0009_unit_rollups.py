"""unit rollups: daily totals per branch, region and HQ row

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 15:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "unit_rollups",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["org_units.id"], name=op.f("fk_unit_rollups_unit_id_org_units")
        ),
        sa.PrimaryKeyConstraint("unit_id", "day", "metric", "stripe", name=op.f("pk_unit_rollups")),
    )
    # The totals so far, from the rep-level rollups (the same sums ingest adds from now on).
    op.execute(
        "INSERT INTO unit_rollups (unit_id, day, metric, stripe, value) "
        "SELECT CAST(a AS integer), r.day, r.metric, r.branch_id % 16, sum(r.value) "
        "FROM daily_rollups r JOIN org_units b ON b.id = r.branch_id "
        "CROSS JOIN LATERAL unnest(string_to_array(trim(BOTH '/' FROM b.path), '/')) AS a "
        "GROUP BY 1, 2, 3, 4"
    )


def downgrade():
    op.drop_table("unit_rollups")
