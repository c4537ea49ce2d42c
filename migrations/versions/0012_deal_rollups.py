"""deal rollups: what every projected deal adds to the daily rollups

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 02:00:00

Deal reports (cohort reach, stage entries, closes, won amounts, cycle and step
times, open deals by stage) are now read from rollups that ingest keeps per deal.
This fills them for the deals projected so far, branch by branch.
"""

from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from alembic import op

from hq_server.metrics.deal_rollups import PREFIX, contributions

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ADD = sa.text(
    "INSERT INTO daily_rollups (branch_id, day, rep_id, metric, value) "
    "SELECT * FROM json_populate_recordset(NULL::daily_rollups, :rows) "
    "ON CONFLICT (branch_id, day, rep_id, metric) "
    "DO UPDATE SET value = daily_rollups.value + EXCLUDED.value"
)
_UNITS = sa.text(
    "INSERT INTO unit_rollups (unit_id, day, metric, stripe, value) "
    "SELECT CAST(a AS integer), r.day, r.metric, r.branch_id % 16, sum(r.value) "
    "FROM daily_rollups r JOIN org_units b ON b.id = r.branch_id "
    "CROSS JOIN LATERAL unnest(string_to_array(trim(BOTH '/' FROM b.path), '/')) AS a "
    "WHERE r.branch_id = :b AND r.metric LIKE 'deal\\_%' GROUP BY 1, 2, 3, 4 "
    "ON CONFLICT (unit_id, day, metric, stripe) "
    "DO UPDATE SET value = unit_rollups.value + EXCLUDED.value"
)


def upgrade():
    bind = op.get_bind()
    branches = bind.execute(
        sa.text("SELECT id, timezone FROM org_units WHERE kind = 'branch' ORDER BY id")
    ).all()
    for branch_id, tz_name in branches:
        tz = ZoneInfo(tz_name)
        totals: dict[tuple, Decimal] = {}
        deals = bind.execution_options(yield_per=5000).execute(
            sa.text(
                "SELECT rep_id, stage, status, amount, opened_at, closed_at, reached_at "
                "FROM deals WHERE branch_id = :b"
            ),
            {"b": branch_id},
        )
        for deal in deals.mappings():
            for key, value in contributions(dict(deal), tz).items():
                totals[key] = totals.get(key, Decimal(0)) + value
        if not totals:
            continue
        rows = [
            {"branch_id": branch_id, "rep_id": rep, "day": day.isoformat(), "metric": metric,
             "value": str(value)}
            for (rep, day, metric), value in totals.items()
        ]
        bind.execute(_ADD, {"rows": orjson.dumps(rows).decode()})
        bind.execute(_UNITS, {"b": branch_id})


def downgrade():
    for table in ("unit_rollups", "daily_rollups"):
        op.execute(f"DELETE FROM {table} WHERE metric LIKE '{PREFIX[:-1]}\\_%'")
