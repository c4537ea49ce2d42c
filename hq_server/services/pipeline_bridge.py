"""The changes bridge of a unit's pipeline, summed in SQL from ``pipeline_changes``.

Only the deals that changed in (t0, t1] move a term. Each one's state at t0 is its first
row in the range when that row is a −1 (a +1 first: HQ did not know the deal at t0), and
its state at t1 is its last row. The deals whose amounts count in the reporting currency
on both sides (or in none yet) are classified and summed per term in the database, as
``metrics.bridge`` classifies them; a deal in another currency comes back as its two
states and goes through ``metrics.bridge`` itself, so it converts and rounds one deal at a
time. Asked for a term, its deals come back with their states too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics.bridge import INFLOWS, OUTFLOWS, TERMS, Bridge, Term, bridge
from hq_server.metrics.pipeline import Rate

MOVING = (*INFLOWS, *OUTFLOWS)  # the terms a deal is listed in (start and end list none)
_STATE = ("status", "stage", "expected_close", "currency", "amount")
_OPEN_IN_P = "{s}status = 'open' AND coalesce({s}expected_close BETWEEN :p_from AND :p_to, false)"
_BRIDGE = text(
    f"""
WITH changed AS NOT MATERIALIZED (
  -- The range's rows: a run of the time index over rows in time order (cheaper to walk
  -- twice than to copy once).
  SELECT id, deal_id, at, sign, status, stage, expected_close, currency, amount
  FROM pipeline_changes
  WHERE branch_id = ANY(CAST(:b AS integer[])) AND at > :t0 AND at <= :t1
), touched AS (
  -- A deal moves no term unless open in P at t0 or at t1: one of its rows is.
  SELECT DISTINCT deal_id FROM changed WHERE {_OPEN_IN_P.format(s="")}
), edge AS (
  SELECT deal_id, status, stage, expected_close, currency, amount,
         first_value(sign) OVER w AS first_sign, first_value(status) OVER w AS was_status,
         first_value(stage) OVER w AS was_stage,
         first_value(expected_close) OVER w AS was_expected_close,
         first_value(currency) OVER w AS was_currency, first_value(amount) OVER w AS was_amount,
         lead(id) OVER w AS later
  FROM changed WHERE deal_id IN (SELECT deal_id FROM touched)
  WINDOW w AS (PARTITION BY deal_id ORDER BY at, id)
), deal AS (
  SELECT *, first_sign = -1 AS known,
         first_sign = -1 AND {_OPEN_IN_P.format(s="was_")} AS was,
         {_OPEN_IN_P.format(s="")} AS now,
         coalesce(CASE WHEN first_sign = -1 THEN was_currency END, :cur) = :cur
           AND coalesce(currency, :cur) = :cur AS home
  FROM edge WHERE later IS NULL
), moved AS (
  SELECT *, CASE WHEN was AND now THEN CASE WHEN a1 > a0 THEN 'increased'
                                            WHEN a1 < a0 THEN 'decreased' END
                 WHEN was THEN CASE status WHEN 'lost' THEN 'lost' WHEN 'won' THEN 'won'
                                           ELSE 'pushed_out' END
                 WHEN now THEN CASE WHEN known THEN 'pulled_in' ELSE 'new' END END AS move
  FROM (SELECT *, CASE WHEN was THEN coalesce(was_amount, 0) ELSE 0 END AS a0,
               CASE WHEN now THEN coalesce(amount, 0) ELSE 0 END AS a1 FROM deal) d
  WHERE was OR now OR NOT home
)
SELECT true AS summed, was, now, move, count(*) AS deals, sum(a0) AS a0, sum(a1) AS a1,
       NULL AS deal_id, NULL AS home, NULL AS known, {", ".join(f"NULL AS {f}" for f in _STATE)},
       {", ".join(f"NULL AS was_{f}" for f in _STATE)}
FROM moved WHERE home GROUP BY was, now, move
UNION ALL
SELECT false, was, now, move, 1, a0, a1, deal_id, home, known, {", ".join(_STATE)},
       {", ".join(f"was_{f}" for f in _STATE)}
FROM moved WHERE NOT home OR move = :term
"""
)


@dataclass(frozen=True)
class Moves:
    """The bridge of the deals that changed, and the deals of the term asked for."""

    bridge: Bridge
    ids: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def moves_between(
    branches: list[int],
    t0: datetime,
    t1: datetime,
    p_from: date,
    p_to: date,
    *,
    currency: str,
    rate: Rate,
    term: str | None = None,
) -> Moves:
    """Bridge the deals of ``branches`` that changed in (t0, t1]; list ``term``'s deals.

    ``rate`` converts the other currencies, at one rate for both sides. The bridge's terms
    carry no ids; ``ids`` are the deals of ``term`` (none for start and end), sorted as
    ``metrics.bridge`` sorts them, with their states in ``before`` and ``after``.
    """
    params = {"b": branches, "t0": t0, "t1": t1, "p_from": p_from, "p_to": p_to}
    params |= {"cur": currency, "term": term if term in MOVING else None}
    totals = {name: Term() for name in TERMS}
    before: dict = {}
    after: dict = {}
    asked: list = []
    for row in db.session.execute(_BRIDGE, params).mappings():
        if row["summed"]:
            for name, term_row in _home_terms(row):
                totals[name] = _plus(totals[name], term_row)
            continue
        deal_id = row["deal_id"]
        if row["known"]:
            before[deal_id] = {f: row[f"was_{f}"] for f in _STATE}
        after[deal_id] = {f: row[f] for f in _STATE}
        if row["home"]:
            asked.append(deal_id)
    others = set(after) - set(asked)
    moved = bridge(
        {i: s for i, s in before.items() if i in others},
        {i: s for i, s in after.items() if i in others},
        p_from,
        p_to,
        rate_start=rate,
    )
    for name in TERMS:
        totals[name] = _plus(totals[name], getattr(moved, name))
    if term in MOVING:
        asked += list(getattr(moved, term).ids)
    ids = sorted(asked, key=str)
    return Moves(
        Bridge(p_from, p_to, **{name: replace(t, ids=()) for name, t in totals.items()}),
        ids,
        {i: before[i] for i in ids if i in before},
        {i: after[i] for i in ids},
    )


def _home_terms(row) -> list[tuple[str, Term]]:
    """Return the terms a group of deals in the reporting currency lands in."""
    n, a0, a1 = row["deals"], Decimal(row["a0"]), Decimal(row["a1"])
    out = []
    if row["was"]:
        out.append(("start", Term(n, a0)))
    if row["now"]:
        out.append(("end", Term(n, a1)))
    move = row["move"]
    if move == "increased":
        out.append((move, Term(0, a1 - a0)))
    elif move == "decreased":
        out.append((move, Term(0, a0 - a1)))
    elif move in ("won", "lost", "pushed_out"):
        out.append((move, Term(n, a0)))
    elif move in ("new", "pulled_in"):
        out.append((move, Term(n, a1)))
    return out


def _plus(a: Term, b: Term) -> Term:
    return Term(a.count + b.count, a.amount + b.amount)


_SLIPPED = text(
    """
WITH changed AS (
  SELECT DISTINCT deal_id FROM pipeline_changes
  WHERE branch_id = ANY(CAST(:b AS integer[])) AND at > :t0 AND at <= :t1
), closes AS (
  SELECT c.deal_id, c.expected_close,
         lag(c.expected_close) OVER (PARTITION BY c.deal_id ORDER BY c.at, c.id) AS earlier
  FROM pipeline_changes c JOIN changed USING (deal_id)
  WHERE c.at <= :t1 AND c.sign = 1 AND c.expected_close IS NOT NULL
)
SELECT deal_id, count(*) AS times FROM closes WHERE expected_close > earlier
GROUP BY deal_id ORDER BY times DESC, deal_id LIMIT :limit
"""
)


def slipped_between(branches: list[int], t0: datetime, t1: datetime, limit: int = 200) -> list:
    """Return the deals changed in (t0, t1] whose expected close moved later, most often first.

    Each deal's successive expected closes as HQ saw them up to t1, skipping spells with
    none set; a move counts when the new close is later than the one before.
    """
    params = {"b": branches, "t0": t0, "t1": t1, "limit": limit}
    return [
        {"id": str(row.deal_id), "times": row.times} for row in db.session.execute(_SLIPPED, params)
    ]
