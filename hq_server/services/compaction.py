"""Fold the stripes of settled region and HQ rollup rows into one row per day and metric.

Ingest adds to a region's or HQ's ``unit_rollups`` row on the stripe of the pushing
branch (``branch_id % STRIPES``), so concurrent pushes seldom wait on one row. Once a
day has settled, nobody needs the stripes: a read would sum sixteen rows where one
will do. This job moves them into stripe 0, one unit per transaction, locking rows in
the same key order ingest uses. Late events for a compacted day simply add to their
stripe again; the next run folds them in. Sums never change.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from hq_server.extensions import db

log = logging.getLogger(__name__)
SETTLE_DAYS = 2

_FOLD = text(
    "WITH locked AS ("
    "  SELECT unit_id, day, metric, stripe FROM unit_rollups"
    "  WHERE unit_id = :u AND day < :cutoff ORDER BY day, metric, stripe FOR UPDATE"
    "), moved AS ("
    "  DELETE FROM unit_rollups x USING locked l WHERE x.stripe <> 0 AND l.stripe <> 0"
    "  AND x.unit_id = l.unit_id AND x.day = l.day AND x.metric = l.metric"
    "  AND x.stripe = l.stripe RETURNING x.day, x.metric, x.value"
    ") "
    "INSERT INTO unit_rollups (unit_id, day, metric, stripe, value) "
    "SELECT :u, day, metric, 0, sum(value) FROM moved GROUP BY 1, 2, 3 ORDER BY 2, 3 "
    "ON CONFLICT (unit_id, day, metric, stripe) "
    "DO UPDATE SET value = unit_rollups.value + EXCLUDED.value"
)


def compact_unit_rollups(today: date | None = None) -> dict:
    """Fold settled stripes of every region and HQ row; return rows folded per run."""
    today = today or datetime.now(UTC).date()
    cutoff = today - timedelta(days=SETTLE_DAYS)
    units = db.session.scalars(
        text(
            "SELECT DISTINCT unit_id FROM unit_rollups WHERE stripe <> 0 AND day < :cutoff "
            "AND unit_id IN (SELECT id FROM org_units WHERE kind <> 'branch') ORDER BY 1"
        ),
        {"cutoff": cutoff},
    ).all()
    written = 0
    for unit_id in units:
        written += db.session.execute(_FOLD, {"u": unit_id, "cutoff": cutoff}).rowcount
        db.session.commit()
    log.info("compacted the rollups of %d units into %d rows", len(units), written)
    return {"units": len(units), "rows": written}
