"""covering rollup keys: each rollup's value carried in its primary key's index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 03:00:00

Reports sum rollup values over days; with the value in the key's index those reads are
index-only scans (the index pages of a unit's or branch's days are next to each other,
while the rows themselves are spread over the heap in the order pushes wrote them).
Vacuum runs sooner on both tables so the visibility map, which index-only scans rely
on, stays current as pushes update old days.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KEYS = {
    "daily_rollups": "branch_id, day, rep_id, metric",
    "unit_rollups": "unit_id, day, metric, stripe",
}
VACUUM_SOONER = "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02"


def _swap_key(table: str, include: str) -> None:
    op.execute(f"CREATE UNIQUE INDEX {table}_key ON {table} ({KEYS[table]}){include}")
    op.execute(
        f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
        f"ADD CONSTRAINT pk_{table} PRIMARY KEY USING INDEX {table}_key"
    )


def upgrade():
    for table in KEYS:
        _swap_key(table, " INCLUDE (value)")
        op.execute(f"ALTER TABLE {table} SET ({VACUUM_SOONER})")


def downgrade():
    for table in KEYS:
        op.execute(
            f"ALTER TABLE {table} RESET "
            "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor)"
        )
        _swap_key(table, "")
