"""Finance's live pipeline of any unit: open, weighted, by stage, category and close month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics.bridge import TERMS
from hq_server.metrics.pipeline import converted, in_currency, summarize
from hq_server.models import OrgUnit
from hq_server.services import fx, playbooks
from hq_server.services import pipeline_history as history
from hq_server.services.pipeline_bridge import moves_between, slipped_between
from hq_server.services.scope import (
    Principal,
    branch_ids_under,
    resolve_unit,
    rows_and_branches,
    unit_row_ids,
)
from shared.stages import DEFAULT_STAGES

# ``g``: the group (unit) each branch is read for.
_DEALS = text(
    "SELECT m.g, d.id, d.stage, d.status, d.amount, d.currency, d.expected_close, "
    "d.forecast_category, d.closed_at, d.closed_day, d.opened_at, d.name, d.customer, "
    "b.code AS branch, p.code AS rep FROM deals d JOIN org_units b ON b.id = d.branch_id "
    "JOIN unnest(CAST(:b AS integer[]), CAST(:bg AS integer[])) AS m(branch_id, g) "
    "ON m.branch_id = d.branch_id LEFT JOIN reps p ON p.id = d.rep_id "
    "WHERE (d.status = 'open' OR (d.status IN ('won', 'lost') AND (CAST(:lo AS date) IS NULL "
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
    return _deals_each([branch_ids_under(principal, unit)], close_from, close_to)[0]


def _deals_each(groups: list[list[int]], close_from, close_to) -> list[list[dict]]:
    """Return ``open_deals`` of several sets of branches in one read, one list each."""
    branches, group = history.pairs(groups)
    params = {"b": branches, "bg": group, "lo": close_from, "hi": close_to}
    out: list[list[dict]] = [[] for _ in groups]
    for row in db.session.execute(_DEALS, params).mappings():
        deal = dict(row)
        out[deal.pop("g")].append(deal)
    return out


@dataclass(frozen=True)
class Reach:
    """A unit (its latest row), its rows in the caller's scope and the branch rows under it."""

    unit: OrgUnit
    rows: list[int]
    branches: list[int]


def pipeline(
    principal: Principal,
    unit: str,
    *,
    close_from: date | None = None,
    close_to: date | None = None,
    as_of: date | None = None,
    at: datetime | None = None,
    basis: str = "applied",
) -> dict:
    """Summarize the unit's pipeline in the reporting currency at today's (or as-of) rates.

    With ``at``, the pipeline as HQ knew it at that moment (``pipeline_history``), at the
    rates of that day unless ``as_of`` names another; its window must be whole months.
    Now, with no window or a whole-month one, the same sums serve the live read; a window
    of other days is read deal by deal. ``basis="occurred"`` replays instead the events
    that had happened by ``at`` (late arrivals included), deal by deal.
    """
    node = resolve_unit(principal, unit)
    reach = Reach(node, unit_row_ids(principal, unit), branch_ids_under(principal, unit))
    window = {"close_from": close_from, "close_to": close_to, "as_of": as_of}
    return _pipelines([reach], at=at, basis=basis, **window)[0]


def pipeline_by_unit(
    principal: Principal,
    units: list[str],
    *,
    close_from: date | None = None,
    close_to: date | None = None,
    as_of: date | None = None,
    at: datetime | None = None,
    basis: str = "applied",
) -> dict[str, dict]:
    """Return ``pipeline`` of each unit (the regions of HQ, the branches of a region).

    The same figures as one ``pipeline`` call per unit, read together: one query for all
    of them, its rows tagged with the unit they are summed for.
    """
    if not units:
        return {}
    found = rows_and_branches(principal, units)
    reach = [Reach(*found[code]) for code in units]
    window = {"close_from": close_from, "close_to": close_to, "as_of": as_of}
    reports = _pipelines(reach, at=at, basis=basis, **window)
    return dict(zip(units, reports, strict=True))


def _pipelines(
    reach: list[Reach],
    *,
    close_from: date | None,
    close_to: date | None,
    as_of: date | None,
    at: datetime | None,
    basis: str,
) -> list[dict]:
    extra: list[dict] = [{} for _ in reach]
    if at is None and not history.is_whole_months(close_from, close_to):
        # A window of odd days: deal by deal from the projection.
        as_of = as_of or date.today()
        deals = _deals_each([r.branches for r in reach], close_from, close_to)
        stages = stage_table()
    else:
        # The history's sums: the latest cut plus what changed since.
        history.whole_months(close_from, close_to)
        moment = at or datetime.now(UTC)
        as_of = as_of or moment.date()
        rules = history.basis_at(moment)
        stages = rules.stages
        if basis == "occurred" and at is not None:
            deals = history.deals_occurred_each([r.branches for r in reach], at)
            cuts = [None] * len(reach)
        else:
            deals, cuts = _history_rows(reach, rules)
        if at is not None:
            extra = [
                {
                    "at": at.isoformat(),
                    "basis": basis,
                    "snapshot": cut.isoformat() if cut else None,
                    "playbook_version": rules.version,
                }
                for cut in cuts
            ]
    rate, table = fx.converter(as_of)
    currency = fx.reporting_currency()
    window = {"currency": currency, "close_from": close_from, "close_to": close_to}
    return [
        {
            "unit": {"code": r.unit.code, "name": r.unit.name, "kind": r.unit.kind},
            "currency": currency,
            "rates": _rates_used(rows, table),
            "rates_as_of": as_of.isoformat(),
            **more,
            **summarize(rows, stages, rate, **window).as_dict(),
        }
        for r, rows, more in zip(reach, deals, extra, strict=True)
    ]


def _rates_used(deals: list[dict], table: dict) -> dict:
    """Return the rates of the currencies the deals are in, with the day of each."""
    used = sorted({d["currency"] for d in deals if d["currency"]})
    return {
        c: {
            "rate": str(table[c]["rate"]),
            "day": table[c]["day"].isoformat() if table[c]["day"] else None,
        }
        for c in used
        if c in table
    }


def _history_rows(reach: list[Reach], rules) -> tuple[list, list]:
    """Return each unit's rows from the history and the cut they start from.

    A region or HQ reads an hourly cut, a branch a full one: one read per kind.
    """
    rows: list = [None] * len(reach)
    cuts: list = [None] * len(reach)
    for upper in (True, False):
        picked = [i for i, r in enumerate(reach) if (r.unit.kind != "branch") is upper]
        if not picked:
            continue
        cut = history.usable_cut(rules, upper=upper)
        found = history.rows_as_of_each(
            [(reach[i].rows, reach[i].branches) for i in picked], rules, cut
        )
        for i, got in zip(picked, found, strict=True):
            rows[i], cuts[i] = got, cut
    return rows, cuts


def changes(
    principal: Principal,
    unit: str,
    t0: datetime,
    t1: datetime,
    close_from: date,
    close_to: date,
    *,
    term: str | None = None,
    slipped: bool = True,
) -> dict:
    """Bridge the unit's open pipeline closing in [close_from, close_to] from t0 to t1.

    Both sides convert at the rates of t1's day (a constant-currency bridge), so every
    change of amount is a change of the deals. Only deals that changed in (t0, t1] move a
    term (summed in SQL); the rest count in start and end alike. ``term`` adds its deals;
    ``slipped`` names the deals whose expected close moved later.
    """
    node = resolve_unit(principal, unit)
    history.whole_months(close_from, close_to)
    if t1 < t0:
        raise history.WindowError("the end moment is before the start moment")
    branches = branch_ids_under(principal, unit)
    units = unit_row_ids(principal, unit)
    currency = fx.reporting_currency()
    rate, table = fx.converter(t1.date())
    rate = in_currency(rate, currency)
    found = moves_between(
        branches, t0, t1, close_from, close_to, currency=currency, rate=rate, term=term
    )
    moved = found.bridge
    sides = []
    for moment in (t0, t1):
        basis = history.basis_at(moment)
        rows = history.rows_as_of(units, branches, basis, upper=node.kind != "branch")
        summary = summarize(
            rows, basis.stages, rate, currency=currency, close_from=close_from, close_to=close_to
        )
        sides.append((summary.open_count, summary.open_amount))
    # Deals that did not change sit in both snapshots with the same amount.
    still = (sides[0][0] - moved.start.count, sides[0][1] - moved.start.amount)
    terms = {name: getattr(moved, name) for name in TERMS}
    out = {name: {"count": t.count, "amount": t.amount} for name, t in terms.items()}
    for name in ("start", "end"):
        out[name] = {
            "count": out[name]["count"] + still[0],
            "amount": out[name]["amount"] + still[1],
        }
    balanced = moved.check() and (out["end"]["count"], out["end"]["amount"]) == sides[1]
    result = {
        "unit": {"code": node.code, "name": node.name, "kind": node.kind},
        "currency": currency,
        "from": t0.isoformat(),
        "to": t1.isoformat(),
        "basis": "applied",
        "rates_as_of": t1.date().isoformat(),
        "period": {"from": close_from.isoformat(), "to": close_to.isoformat()},
        "terms": {
            name: {"count": v["count"], "amount": str(v["amount"])} for name, v in out.items()
        },
        "balanced": balanced,
    }
    if slipped:
        result["slipped"] = slipped_between(branches, t0, t1)
    if term is not None:
        result["term"] = term
        result["deals"] = _deal_details(found.ids, found.before, found.after, rate)
    return result


def _side(state: dict | None, rate) -> dict | None:
    if state is None:
        return None
    return {
        "status": state["status"],
        "stage": state["stage"],
        "expected_close": state["expected_close"] and state["expected_close"].isoformat(),
        "currency": state["currency"],
        "amount": str(converted(state, rate)),
    }


def _deal_details(ids: list, before: dict, after: dict, rate) -> list[dict]:
    """Return a term's deals: who and what, and their state at both moments."""
    if not ids:
        return []
    rows = db.session.execute(
        text(
            "SELECT d.id, d.name, d.customer, b.code AS branch, p.code AS rep FROM deals d "
            "JOIN org_units b ON b.id = d.branch_id LEFT JOIN reps p ON p.id = d.rep_id "
            "WHERE d.id = ANY(:ids)"
        ),
        {"ids": ids},
    ).mappings()
    known = {row["id"]: dict(row) for row in rows}
    details = []
    for deal_id in ids:
        info = known.get(deal_id, {"name": None, "customer": None, "branch": None, "rep": None})
        details.append(
            {
                "id": str(deal_id),
                "name": info["name"],
                "customer": info["customer"],
                "branch": info["branch"],
                "rep": info["rep"],
                "start": _side(before.get(deal_id), rate),
                "end": _side(after.get(deal_id), rate),
            }
        )
    return details
