"""Fold the stripes of settled region and HQ rollup rows into one row per day (or week).

Ingest adds to a region's or HQ's ``unit_rollups`` row on the stripe of the pushing
branch (``branch_id % STRIPES``), so concurrent pushes seldom wait on one row. Once a
day has settled, nobody needs the stripes: a read would sum sixteen rows where one
will do. This job moves them into stripe 0, one unit per transaction, locking rows in
the same order ingest does (weeks, then days; each in key order). Late events for a
compacted day simply add to their stripe again; the next run folds them in. Sums never
change.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.services.rows import hold_lock

log = logging.getLogger(__name__)
SETTLE_DAYS = 2


def _fold(table: str, period: str) -> str:
    """Return the statement folding one unit's settled stripes of ``table`` into stripe 0."""
    return (
        "WITH locked AS ("
        f"  SELECT unit_id, {period}, metric, stripe FROM {table}"
        f"  WHERE unit_id = :u AND {period} < :cutoff ORDER BY {period}, metric, stripe"
        "  FOR UPDATE"
        "), moved AS ("
        f"  DELETE FROM {table} x USING locked l WHERE x.stripe <> 0 AND l.stripe <> 0"
        f"  AND x.unit_id = l.unit_id AND x.{period} = l.{period} AND x.metric = l.metric"
        f"  AND x.stripe = l.stripe RETURNING x.{period}, x.metric, x.value"
        ") "
        f"INSERT INTO {table} (unit_id, {period}, metric, stripe, value) "
        f"SELECT :u, {period}, metric, 0, sum(value) FROM moved GROUP BY 1, 2, 3 ORDER BY 2, 3 "
        f"ON CONFLICT (unit_id, {period}, metric, stripe) "
        f"DO UPDATE SET value = {table}.value + EXCLUDED.value"
    )


# Daily rows settle after SETTLE_DAYS; a week once its last day has. The weeks go first:
# a push's rollup statement (``ingest.upsert_rollups``) writes a unit's weekly rows as its
# main statement, before PostgreSQL runs the parts in its WITH clause, the daily rows among
# them. Folding the days first held a unit's daily rows while waiting for a push that held
# its weekly rows and waited for those daily ones: a deadlock.
_FOLDS = (
    (text(_fold("weekly_unit_rollups", "week")), 6),
    (text(_fold("unit_rollups", "day")), 0),
)


def hold_off_compaction(conn) -> None:
    """Take the compaction's lock to the end of the transaction.

    A moved branch's rebuild writes the shared rows once per row version of the branch,
    each on its own stripe, in separate statements; the compaction takes a unit's rows of
    every stripe in one order, which separate statements cannot follow. The rebuild takes
    this lock before it writes a row, and each unit's compaction before it locks one, so
    the two go one at a time and never wait on each other's rows.
    """
    hold_lock(conn, "compaction:unit-rollups")


def compact_unit_rollups(today: date | None = None) -> dict:
    """Fold settled stripes of every region and HQ row; return rows folded per run."""
    today = today or datetime.now(UTC).date()
    cutoff = today - timedelta(days=SETTLE_DAYS)
    units = db.session.scalars(
        text(
            "SELECT unit_id FROM (SELECT unit_id FROM unit_rollups WHERE stripe <> 0 "
            "AND day < :cutoff UNION SELECT unit_id FROM weekly_unit_rollups "
            "WHERE stripe <> 0 AND week < :week_cutoff) s "
            "WHERE unit_id IN (SELECT id FROM org_units WHERE kind <> 'branch') ORDER BY 1"
        ),
        {"cutoff": cutoff, "week_cutoff": cutoff - timedelta(days=6)},
    ).all()
    written = 0
    for unit_id in units:
        hold_off_compaction(db.session.connection())
        for fold, week_days in _FOLDS:
            params = {"u": unit_id, "cutoff": cutoff - timedelta(days=week_days)}
            written += db.session.execute(fold, params).rowcount
        db.session.commit()
    log.info("compacted the rollups of %d units into %d rows", len(units), written)
    return {"units": len(units), "rows": written}
