"""Read and write the deal projection in bulk (one statement each way)."""

from __future__ import annotations

from decimal import Decimal

from hq_server.metrics.projection import local_day
from hq_server.services.rows import execute_binary, execute_plain, to_json

_COLUMNS = (
    "id",
    "branch_id",
    "rep_id",
    "customer",
    "name",
    "stage",
    "status",
    "amount",
    "currency",
    "expected_close",
    "forecast_category",
    "loss_reason",
    "opened_at",
    "closed_at",
    "last_activity_at",
    "event_count",
    "reached_at",
    "versions",
)


def load_deals(conn, deal_ids: list, *, lock: bool = True) -> dict:
    """Return projected state dicts of the given deals, locked for update."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM deals WHERE id = ANY(%(ids)b)"
    rows = execute_binary(conn, sql + (" FOR UPDATE" if lock else ""), {"ids": deal_ids})
    states = {}
    for row in rows:
        state = dict(zip(_COLUMNS, row, strict=True))
        if state["amount"] is not None:
            state["amount"] = Decimal(state["amount"])
        states[state["id"]] = state
    return states


def write_deals(conn, states: list[dict], tz) -> int:
    """Upsert projected deals, deriving their local open and close days; return rows written.

    A row of another branch is never overwritten (it is not counted either).
    """
    rows = []
    for s in states:
        row = dict(s)
        row["opened_day"] = local_day(s["opened_at"], tz)
        row["closed_day"] = local_day(s["closed_at"], tz)
        rows.append(row)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_COLUMNS[1:], "opened_day", "closed_day"))
    written = execute_plain(
        conn,
        "INSERT INTO deals SELECT * FROM json_populate_recordset(NULL::deals, %(rows)s) "
        f"ON CONFLICT (id) DO UPDATE SET {sets} WHERE deals.branch_id = EXCLUDED.branch_id "
        "RETURNING id",
        {"rows": to_json(rows)},
    )
    return len(written)
