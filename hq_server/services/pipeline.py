"""Finance's live pipeline of any unit: open, weighted, by stage, category and close month."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics.pipeline import summarize
from hq_server.services import fx, playbooks
from hq_server.services.scope import Principal, branch_ids_under, resolve_unit
from shared.stages import DEFAULT_STAGES

_DEALS = text(
    "SELECT d.id, d.stage, d.status, d.amount, d.currency, d.expected_close, "
    "d.forecast_category, d.closed_at, d.closed_day, d.opened_at, d.name, d.customer, "
    "b.code AS branch, p.code AS rep FROM deals d JOIN org_units b ON b.id = d.branch_id "
    "LEFT JOIN reps p ON p.id = d.rep_id WHERE d.branch_id = ANY(:b) "
    "AND (d.status = 'open' OR (d.status IN ('won', 'lost') AND (CAST(:lo AS date) IS NULL "
    "OR d.closed_day >= :lo) AND (CAST(:hi AS date) IS NULL OR d.closed_day <= :hi)))"
)


def stage_table():
    """Return the stage table of the playbook in force (the default before any)."""
    current = playbooks.latest()
    if current is None:
        return DEFAULT_STAGES
    return playbooks.compiled(current.version, current.document).stages


def open_deals(
    principal: Principal, unit: str, close_from: date | None, close_to: date | None
) -> list[dict]:
    """Return the open deals, and the deals won or lost in the window, under ``unit``."""
    branches = branch_ids_under(principal, unit)
    rows = db.session.execute(_DEALS, {"b": branches, "lo": close_from, "hi": close_to})
    return [dict(row) for row in rows.mappings()]


def pipeline(
    principal: Principal,
    unit: str,
    *,
    close_from: date | None = None,
    close_to: date | None = None,
    as_of: date | None = None,
) -> dict:
    """Summarize the unit's pipeline in the reporting currency at today's (or as-of) rates."""
    node = resolve_unit(principal, unit)
    as_of = as_of or date.today()
    deals = open_deals(principal, unit, close_from, close_to)
    rate, table = fx.converter(as_of)
    currency = fx.reporting_currency()
    summary = summarize(
        deals, stage_table(), rate, currency=currency, close_from=close_from, close_to=close_to
    )
    used = sorted({d["currency"] for d in deals if d["currency"]})
    return {
        "unit": {"code": node.code, "name": node.name, "kind": node.kind},
        "currency": currency,
        "rates": {
            c: {
                "rate": str(table[c]["rate"]),
                "day": table[c]["day"].isoformat() if table[c]["day"] else None,
            }
            for c in used
            if c in table
        },
        "rates_as_of": as_of.isoformat(),
        **summary.as_dict(),
    }
