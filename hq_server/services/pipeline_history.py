"""The pipeline's history: what HQ knew of every deal at any past moment, and fast.

Basis: *applied* time. A deal's pipeline state at moment T is the projection of the
events HQ had applied by T (for a pushed event, the moment its push was stored; for an
event held for approval, the moment it was released). That is what finance saw on the
screen at T, it never changes afterwards, and it equals a replay of the event log up to T
(``received_at <= T``, counted events). A late event with an old ``occurred_at`` shows from
the moment it arrived, not before.

Storage: every push that changes a deal's pipeline fields writes two rows to
``pipeline_changes`` at the push's time: −1 with the old state, +1 with the new. The sum
of all rows up to T is the pipeline at T. A *cut* (``pipeline_cuts``, each midnight
UTC) stores that sum grouped per unit × status × stage × category × month ×
currency in ``pipeline_snapshots``, for every unit on each branch's path (branch, region,
HQ: the upper levels add only a few dozen rows each); an as-of read adds the rows since
the latest usable cut. Deals in the reporting currency (or in none yet) are summed with
their weighted amount rounded per deal first; a deal in another currency keeps a row of
its own, so it still converts and rounds one deal at a time at the rate of the day asked
for. A cut's weighted amounts use the stage probabilities in force at the cut; a read
whose moment falls under another playbook version, or after the reporting currency
changed, does not use it.

As-of windows are whole months (the snapshot keeps months, not days).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics.projection import apply_event, local_day, new_deal
from hq_server.services import fx, playbooks
from hq_server.services.rows import execute_binary, hold_lock
from hq_server.services.scope import units_on_path
from shared.stages import DEFAULT_STAGES, Stage

log = logging.getLogger(__name__)

FIELDS = (
    "branch_id",
    "status",
    "stage",
    "forecast_category",
    "expected_close",
    "closed_day",
    "currency",
    "amount",
)
# Cuts are not taken closer to now than this: pushes stamped before a cut must have committed.
SETTLE = timedelta(minutes=10)


class WindowError(ValueError):
    """An as-of window that is not whole months."""


def pipeline_state(state: dict, tz) -> tuple:
    """Return the fields of a projected deal that the pipeline reads, in ``FIELDS`` order."""
    closed_day = local_day(state["closed_at"], tz)
    return tuple(closed_day if f == "closed_day" else state[f] for f in FIELDS)


def record_changes(conn, before: dict, after: dict, at: datetime, tz) -> int:
    """Write −old/+new rows for the deals whose pipeline fields changed; return rows written.

    ``before`` maps deal id to ``pipeline_state`` before the push (a new deal: absent),
    ``after`` maps deal id to its projected state after it.
    """
    rows = []
    for deal_id, state in after.items():
        new = pipeline_state(state, tz)
        old = before.get(deal_id)
        if old == new:
            continue
        if old is not None:
            rows.append((at, deal_id, -1, old))
        rows.append((at, deal_id, 1, new))
    if rows:
        insert_changes(conn, rows)
    return len(rows)


_INSERT = (
    "INSERT INTO pipeline_changes (at, deal_id, sign, branch_id, status, stage, "
    "forecast_category, expected_close, closed_day, currency, amount) "
    "SELECT * FROM unnest(%(ats)b::timestamptz[], %(ids)b::uuid[], %(signs)b::smallint[], "
    "%(branches)b::int[], %(statuses)b::text[], %(stages)b::text[], %(cats)b::text[], "
    "%(closes)b::date[], %(closed)b::date[], %(currencies)b::text[], %(amounts)b::numeric[])"
)


_STATE_PARAMS = (
    "branches",
    "statuses",
    "stages",
    "cats",
    "closes",
    "closed",
    "currencies",
    "amounts",
)


def insert_changes(conn, rows: list[tuple]) -> None:
    """Insert ``(at, deal id, sign, pipeline_state)`` rows in one statement."""
    columns = zip(*(state for *_, state in rows), strict=True)
    params = dict(zip(_STATE_PARAMS, map(list, columns), strict=True))
    params.update(ats=[r[0] for r in rows], ids=[r[1] for r in rows], signs=[r[2] for r in rows])
    execute_binary(conn, _INSERT, params)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Basis:
    """What an as-of read at a moment assumes: playbook version, stage table, currency."""

    at: datetime
    version: int | None
    stages: tuple[Stage, ...]
    currency: str


def basis_at(at: datetime) -> Basis:
    """Return the playbook version and stage table in force at ``at``, and the currency."""
    version = playbooks.Timeline.load(db.session.connection()).version_at(at)
    if version is None:
        stages = tuple(DEFAULT_STAGES)
    else:
        stages = tuple(playbooks.compiled(version).stages)
    return Basis(at, version, stages, fx.reporting_currency())


def _probabilities(stages: Iterable[Stage]) -> dict:
    stages = list(stages)
    first = min((s for s in stages if not s.is_closed), key=lambda s: s.order)
    return {
        "p_names": [s.name for s in stages],
        "p_values": [Decimal(str(s.probability)) for s in stages],
        "p_first": first.name,
    }


# The rows of pipeline_changes in a range, shaped like snapshot rows: weighted per deal in
# the reporting currency (others are weighted at read time), one row per foreign deal.
# ``{unit}``/``{join}``: for a read, the group the branch is read for; for a cut, one row per
# unit on the branch's path.
_CHANGE_ROWS = """
SELECT {unit} AS unit_id, c.status, c.stage, c.forecast_category,
       CAST(date_trunc('month', CASE WHEN c.status = 'open' THEN c.expected_close
                                     ELSE c.closed_day END) AS date) AS month,
       c.currency,
       CASE WHEN coalesce(c.currency, :cur) = :cur THEN NULL ELSE c.deal_id END AS deal_id,
       c.sign AS deals, c.sign * coalesce(c.amount, 0) AS amount,
       CASE WHEN coalesce(c.currency, :cur) = :cur AND c.status = 'open'
            THEN c.sign * round(coalesce(c.amount, 0) * p.prob, 2) END AS weighted
FROM pipeline_changes c {join}
LEFT JOIN unnest(CAST(:p_names AS text[]), CAST(:p_values AS numeric[])) AS p(stage, prob)
       ON p.stage = coalesce(c.stage, :p_first)
WHERE {where}
"""
_GROUP = "unit_id, status, stage, forecast_category, month, currency, deal_id"
_ON_PATH = "JOIN org_units o ON o.id = c.branch_id " + units_on_path("o")
_SUMS = "sum(deals) AS deals, sum(amount) AS amount, sum(weighted) AS weighted"
_NONZERO = "HAVING sum(deals) <> 0 OR sum(amount) <> 0"


def usable_cut(basis: Basis, *, upper: bool = True) -> datetime | None:
    """Return the latest cut at or before the moment that matches its playbook and currency.

    A read of a region or HQ (``upper``) may use an hourly cut; a branch read needs one
    with branch rows (a full cut).
    """
    return db.session.execute(
        text(
            "SELECT max(cut) FROM pipeline_cuts WHERE cut <= :at AND reporting_currency = :cur "
            "AND playbook_version IS NOT DISTINCT FROM :v AND (:upper OR levels = 'all')"
        ),
        {"at": basis.at, "cur": basis.currency, "v": basis.version, "upper": upper},
    ).scalar()


def rows_as_of(
    units: list[int], branches: list[int], basis: Basis, *, upper: bool = True
) -> list[dict]:
    """Return the pipeline of a unit at ``basis.at`` as summed rows (pseudo-deals).

    ``units`` are the unit's rows (its versions) in the caller's scope, ``branches`` the
    branch rows under them: the cut is read at the unit's own level (a few dozen rows
    whatever its size), the changes since it by branch. ``upper``: the unit is a region or
    HQ (an hourly cut will do); else a branch (a full cut).

    Each row reads like a deal to ``metrics.pipeline.summarize``: status, stage, category,
    currency, the month as ``expected_close`` (open) or ``closed_day`` (closed), and
    ``_count`` deals worth ``amount`` (``_weighted`` already rounded per deal when set).
    """
    cut = usable_cut(basis, upper=upper)
    return rows_as_of_each([(units, branches)], basis, cut)[0]


def pairs(groups: Iterable[Iterable[int]]) -> tuple[list[int], list[int]]:
    """Return ids and the index of their group, each pair once, to join in SQL."""
    found = sorted({(i, n) for n, ids in enumerate(groups) for i in ids})
    return [i for i, _ in found], [n for _, n in found]


def rows_as_of_each(
    groups: list[tuple[list[int], list[int]]], basis: Basis, cut: datetime | None
) -> list[list[dict]]:
    """Return ``rows_as_of`` of several units in one read, summed from ``cut``.

    ``groups`` holds each unit's ``(units, branches)``; every unit must take the same cut
    (all regions or HQ, or all branches). One list of rows per group, in their order.
    """
    units, unit_group = pairs(u for u, _ in groups)
    branches, branch_group = pairs(b for _, b in groups)
    params = {
        "u": units,
        "ug": unit_group,
        "b": branches,
        "bg": branch_group,
        "at": basis.at,
        "cur": basis.currency,
        "cut": cut,
        **_probabilities(basis.stages),
    }
    changes = _CHANGE_ROWS.format(
        unit="m.g",
        join="JOIN unnest(CAST(:b AS integer[]), CAST(:bg AS integer[])) AS m(branch_id, g) "
        "ON m.branch_id = c.branch_id",
        where="c.at <= :at" + (" AND c.at >= :cut" if cut is not None else ""),
    )
    if cut is not None:
        source = (
            "SELECT m.g AS unit_id, s.status, s.stage, s.forecast_category, s.month, "
            "s.currency, s.deal_id, s.deals, s.amount, s.weighted FROM pipeline_snapshots s "
            "JOIN unnest(CAST(:u AS integer[]), CAST(:ug AS integer[])) AS m(unit_id, g) "
            f"ON m.unit_id = s.unit_id WHERE s.cut = :cut UNION ALL {changes}"
        )
    else:
        source = changes
    sql = f"SELECT {_GROUP}, {_SUMS} FROM ({source}) s GROUP BY {_GROUP} {_NONZERO}"
    out: list[list[dict]] = [[] for _ in groups]
    for row in db.session.execute(text(sql), params).mappings():
        out[row["unit_id"]].append(_pseudo_deal(row))
    return out


def _pseudo_deal(row) -> dict:
    closed = row["status"] != "open"
    deal = {
        "id": row["deal_id"],
        "status": row["status"],
        "stage": row["stage"],
        "forecast_category": row["forecast_category"],
        "expected_close": None if closed else row["month"],
        "closed_day": row["month"] if closed else None,
        "currency": row["currency"],
        "amount": Decimal(row["amount"]),
        "_count": int(row["deals"]),
    }
    if row["weighted"] is not None:
        deal["_weighted"] = Decimal(row["weighted"])
    return deal


def whole_months(close_from: date | None, close_to: date | None) -> None:
    """Refuse a window that does not start on a 1st and end on a month's last day."""
    if close_from is not None and close_from.day != 1:
        raise WindowError("as-of windows are whole months: close_from must be a 1st")
    if close_to is not None and (close_to + timedelta(days=1)).day != 1:
        raise WindowError("as-of windows are whole months: close_to must be a month's last day")


def is_whole_months(close_from: date | None, close_to: date | None) -> bool:
    """Tell whether the window is whole months (or open at either end)."""
    try:
        whole_months(close_from, close_to)
    except WindowError:
        return False
    return True


# --------------------------------------------------------------------------- cuts


def build_cut(cut: datetime, *, upper: bool = False) -> int:
    """Sum the pipeline up to (not including) ``cut`` into a snapshot; return its rows.

    A full cut has rows for every unit; an ``upper`` one (the hourly cuts) only for the
    units above branches — a few hundred rows — so region and HQ reads never add more
    than an hour of changes. Builds on the latest earlier usable cut of the same
    playbook version and currency, else on the whole history. A cut that exists is left
    as it is. Caller commits.
    """
    conn = db.session.connection()
    hold_lock(conn, "pipeline_cuts")
    if conn.execute(text("SELECT 1 FROM pipeline_cuts WHERE cut = :c"), {"c": cut}).first():
        return 0
    # The cut holds what was applied strictly before it, weighted by the playbook in force
    # at the cut itself: a cut at a publication serves the new version's reads at once.
    basis = basis_at(cut)
    previous = conn.execute(
        text(
            "SELECT max(cut) FROM pipeline_cuts WHERE cut < :c AND reporting_currency = :cur "
            "AND playbook_version IS NOT DISTINCT FROM :v AND (:upper OR levels = 'all')"
        ),
        {"c": cut, "cur": basis.currency, "v": basis.version, "upper": upper},
    ).scalar()
    params = {
        "levels": "upper" if upper else "all",
        "c": cut,
        "prev": previous,
        "cur": basis.currency,
        "v": basis.version,
        **_probabilities(basis.stages),
    }
    changes = _CHANGE_ROWS.format(
        unit="CAST(a AS integer)",
        join=_ON_PATH,
        where="c.at < :c"
        + (" AND c.at >= :prev" if previous is not None else "")
        + (" AND a <> CAST(o.id AS text)" if upper else ""),
    )
    source = changes
    if previous is not None:
        kept = " AND unit_id IN (SELECT id FROM org_units WHERE kind <> 'branch')"
        source = (
            f"SELECT {_GROUP}, deals, amount, weighted FROM pipeline_snapshots "
            f"WHERE cut = :prev{kept if upper else ''} UNION ALL {changes}"
        )
    conn.execute(
        text(
            "INSERT INTO pipeline_cuts (cut, playbook_version, reporting_currency, levels, rows) "
            "VALUES (:c, :v, :cur, :levels, 0)"
        ),
        params,
    )
    written = conn.execute(
        text(
            f"INSERT INTO pipeline_snapshots (cut, {_GROUP}, deals, amount, weighted) "
            f"SELECT :c, {_GROUP}, {_SUMS} FROM ({source}) s GROUP BY {_GROUP} {_NONZERO}"
        ),
        params,
    ).rowcount
    conn.execute(
        text("UPDATE pipeline_cuts SET rows = :n WHERE cut = :c"), {"n": written, "c": cut}
    )
    return written


def due_cuts(now: datetime | None = None) -> list[tuple[datetime, bool]]:
    """Return the settled moments not cut yet, each with whether it is an upper-only cut.

    Full cuts: each midnight (UTC) since the first change, and each playbook publication
    (its new probabilities weigh the cuts after it). Upper cuts: every other hour.
    """
    now = now or datetime.now(UTC)
    settled = now - SETTLE
    first, last_cut = db.session.execute(
        text("SELECT (SELECT min(at) FROM pipeline_changes), (SELECT max(cut) FROM pipeline_cuts)")
    ).one()
    if first is None:
        return []
    start = _next_hour(last_cut) if last_cut else _next_hour(first)
    cuts = []
    while start <= settled:
        cuts.append((start, start.hour != 0))
        start += timedelta(hours=1)
    published = db.session.scalars(
        text(
            "SELECT p.published_at FROM playbooks p WHERE p.published_at BETWEEN :first AND "
            ":settled AND NOT EXISTS (SELECT 1 FROM pipeline_cuts c WHERE c.cut = p.published_at)"
        ),
        {"first": first, "settled": settled},
    ).all()
    return sorted(set(cuts) | {(moment, False) for moment in published})


def _next_hour(moment: datetime) -> datetime:
    """Return the first full hour (UTC) after ``moment``."""
    utc = moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def snapshot_pipeline(now: datetime | None = None) -> dict:
    """Take every due cut, one transaction each; return how many and their rows."""
    taken, rows = 0, 0
    for cut, upper in due_cuts(now):
        rows += build_cut(cut, upper=upper)
        db.session.commit()
        taken += 1
    return {"cuts": taken, "rows": rows}


# --------------------------------------------------------------------------- backfill


def backfill(progress=None) -> int:
    """Rebuild ``pipeline_changes`` from the event log (cuts are dropped); return rows.

    For an installation upgraded from before the history existed, and as the repair path:
    every counted event is replayed per deal in the order HQ stored it, each change
    stamped with the event's ``received_at``; the table is then rewritten in time order
    (``CLUSTER``: readers of the history wait until the caller commits). Caller commits.
    """
    from hq_server.services.rebuild import replayable

    conn = db.session.connection()
    conn.execute(text("DELETE FROM pipeline_cuts"))
    conn.execute(text("DELETE FROM pipeline_changes"))
    zones = {
        row.id: ZoneInfo(row.timezone)
        for row in conn.execute(text("SELECT id, timezone FROM org_units WHERE kind = 'branch'"))
    }
    result = conn.execute(
        text(
            "SELECT e.id, e.branch_id, e.rep_id, e.deal_id, e.received_at, e.payload, "
            "(SELECT r.id FROM reps r WHERE r.code = e.payload->'data'->>'to_rep') AS to_rep_id "
            "FROM events e WHERE e.status = 'counted' AND e.deal_id IS NOT NULL "
            "ORDER BY e.deal_id, e.received_at, e.id"
        ).execution_options(stream_results=True, yield_per=5000)
    )
    written = 0
    pending: list[tuple] = []
    current, state, known = None, None, None
    for row in result:
        if row.deal_id != current:
            current, known = row.deal_id, None
            state = new_deal(row.deal_id, row.branch_id)
        tz = zones[state["branch_id"]]
        apply_event(state, replayable(row))
        now = pipeline_state(state, tz)
        if now != known:
            if known is not None:
                pending.append((row.received_at, row.deal_id, -1, known))
            pending.append((row.received_at, row.deal_id, 1, now))
            known = now
        if progress:
            progress(1)
        if len(pending) >= 20000:
            written += _flush(conn, pending)
    written += _flush(conn, pending)
    # Replayed deal by deal, the rows lie in deal order; ingest appends them in time
    # order, which is how the bridge and as-of reads walk them (a week's changes on a
    # few thousand pages instead of one page each). Put them back in that order.
    conn.execute(text("CLUSTER pipeline_changes USING ix_pipeline_changes_at"))
    return written


def _flush(conn, pending: list) -> int:
    if pending:
        insert_changes(conn, pending)
    written = len(pending)
    pending.clear()
    return written


# --------------------------------------------------------------------------- occurred basis

_LAST = "ORDER BY e.occurred_at DESC, e.id DESC"
_SETTERS = "('deal.opened', 'lead.created', 'deal.stage_changed', 'deal.won', 'deal.lost')"
_MONEY = "('deal.opened', 'deal.updated', 'deal.won')"
_OCCURRED = text(
    f"""
    SELECT m.g, e.deal_id AS id, min(b.timezone) AS tz,
      (array_agg(CASE e.type WHEN 'deal.opened' THEN coalesce(e.payload->'data'->>'stage', 'lead')
                             WHEN 'lead.created' THEN 'lead'
                             WHEN 'deal.stage_changed' THEN e.payload->'data'->>'to'
                             ELSE split_part(e.type, '.', 2) END {_LAST})
         FILTER (WHERE e.type IN {_SETTERS}))[1] AS stage,
      (array_agg(e.occurred_at {_LAST}) FILTER (WHERE e.type IN {_SETTERS}))[1] AS staged_at,
      (array_agg(e.payload->'data'->>'amount' {_LAST})
         FILTER (WHERE e.type IN {_MONEY} AND e.payload->'data' ? 'amount'))[1] AS amount,
      (array_agg(e.payload->'data'->>'currency' {_LAST})
         FILTER (WHERE e.type IN {_MONEY}
                 AND coalesce(e.payload->'data'->>'currency', '') <> ''))[1] AS currency,
      (array_agg(e.payload->'data'->>'expected_close' {_LAST})
         FILTER (WHERE e.type IN ('deal.opened', 'deal.updated')
                 AND e.payload->'data' ? 'expected_close'))[1] AS expected_close,
      (array_agg(e.payload->'data'->>'forecast_category' {_LAST})
         FILTER (WHERE e.payload->'data' ? 'forecast_category'))[1] AS forecast_category
    FROM events e JOIN org_units b ON b.id = e.branch_id
    JOIN unnest(CAST(:b AS integer[]), CAST(:bg AS integer[])) AS m(branch_id, g)
      ON m.branch_id = e.branch_id
    WHERE e.status = 'counted' AND e.deal_id IS NOT NULL AND e.occurred_at <= :at
    GROUP BY m.g, e.deal_id
    """
)


def deals_occurred_each(groups: list[list[int]], at: datetime) -> list[list[dict]]:
    """Return every deal of each set of branches as the events that had *happened* by ``at``.

    The other basis: the pipeline as it really was at ``at`` by what is known now (late
    events included). It is replayed from the events on each request (each field the last
    writer by occurred time, as the projection does): exact, and slower than the history.
    One read for every set; one list each, in their order.
    """
    branches, branch_group = pairs(groups)
    out: list[list[dict]] = [[] for _ in groups]
    params = {"b": branches, "bg": branch_group, "at": at}
    for row in db.session.execute(_OCCURRED, params).mappings():
        stage = row["stage"]
        status = stage if stage in ("won", "lost") else "open"
        closed_at = row["staged_at"] if status != "open" else None
        out[row["g"]].append(
            {
                "id": row["id"],
                "status": status,
                "stage": stage,
                "forecast_category": row["forecast_category"],
                "expected_close": row["expected_close"]
                and date.fromisoformat(row["expected_close"]),
                "closed_day": local_day(closed_at, ZoneInfo(row["tz"])),
                "currency": row["currency"],
                "amount": Decimal(row["amount"]) if row["amount"] is not None else None,
            }
        )
    return out
