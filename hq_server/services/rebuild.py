"""Recompute the deal projection and the rollups from the event log (the repair path).

A branch's rebuild replays its counted events into fresh deal states and fresh totals,
then adds the difference from the stored totals to the rollups with the statement a push
uses: the branch's rows end as the replay says, its region's and HQ's rows move by the
same difference. That statement takes the shared rows (a region's or HQ's, on the
branch's stripe) in the order every push takes them, and nothing else of the rebuild
locks them: writing them chunk by chunk would hold some while waiting for others, and a
push of another branch on the same stripe could hold those while waiting for these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.metrics.deal_rollups import CURRENT_DAY
from hq_server.metrics.weeks import WEEK_OF
from hq_server.models import OrgUnit
from hq_server.services.compaction import hold_off_compaction
from hq_server.services.ingest import (
    apply_to_projection,
    count_events,
    lock_branch,
    upsert_rollups,
)
from shared.events import load_event

log = logging.getLogger(__name__)
CHUNK = 5000  # events read and replayed at a time

# Compliance counts (rule_*) come from the judgement at ingest, not from replay: a
# rebuild leaves them as they are.
_REPLAYED = "metric NOT LIKE 'rule\\_%'"
_STORED = text(
    f"SELECT rep_id, day, metric, value FROM daily_rollups WHERE branch_id = :b AND {_REPLAYED}"
)
_EVENTS = text(
    "SELECT id, rep_id, payload, (SELECT id FROM reps r WHERE r.code = "
    "payload->'data'->>'to_rep') AS to_rep_id FROM events WHERE branch_id = :b "
    "AND status = 'counted' AND (CAST(:last AS uuid) IS NULL OR id > :last) ORDER BY id LIMIT :n"
)
# The branch's own weeks, each the sum of its days.
_WEEKS = (
    text(f"DELETE FROM weekly_rollups WHERE branch_id = :b AND {_REPLAYED}"),
    text(
        "INSERT INTO weekly_rollups (branch_id, week, rep_id, metric, value) "
        f"SELECT branch_id, {WEEK_OF.format('day')}, rep_id, metric, sum(value) "
        f"FROM daily_rollups WHERE branch_id = :b AND day <> :current AND {_REPLAYED} "
        "GROUP BY 1, 2, 3, 4 HAVING sum(value) <> 0"
    ),
)


def rebuild_branch(code: str) -> int:
    """Rebuild every row version of branch ``code``; return the events replayed (caller commits)."""
    conn = db.session.connection()
    # The branch's pushes and approvals wait meanwhile: nothing is counted twice or missed.
    lock_branch(conn, code)
    # And the stripe compaction, which would not take the rows of a moved branch's versions
    # in the order this writes them.
    hold_off_compaction(conn)
    rows = list(
        db.session.scalars(select(OrgUnit).where(OrgUnit.code == code, OrgUnit.kind == "branch"))
    )
    replayed = 0
    for branch in rows:
        params = {"b": branch.id}
        stored = {(r.rep_id, r.day, r.metric): r.value for r in conn.execute(_STORED, params)}
        conn.execute(text("DELETE FROM deals WHERE branch_id = :b"), params)
        totals: dict[tuple, Decimal] = {}
        for events in _counted_events(conn, branch.id):
            for key, value in apply_to_projection(conn, branch, events).items():
                totals[key] = totals.get(key, Decimal(0)) + value
            count_events(branch, events, totals)
            replayed += len(events)
        upsert_rollups(conn, branch, difference(totals, stored))
        for statement in _WEEKS:
            conn.execute(statement, {**params, "current": CURRENT_DAY})
    log.info("rebuilt branch %s from %d events", code, replayed)
    return replayed


def _counted_events(conn, branch_id: int) -> Iterator[list[dict]]:
    """Yield the branch's counted events, loaded, ``CHUNK`` at a time in id order."""
    last_id = None
    while True:
        batch = conn.execute(_EVENTS, {"b": branch_id, "last": last_id, "n": CHUNK}).all()
        if not batch:
            return
        yield [replayable(row) for row in batch]
        last_id = batch[-1].id


def difference(totals: dict[tuple, Decimal], stored: dict[tuple, Decimal]) -> dict:
    """Return what turns ``stored`` into ``totals``, key by key, without the zeros."""
    out = {}
    for key in totals.keys() | stored.keys():
        value = totals.get(key, Decimal(0)) - stored.get(key, Decimal(0))
        if value:
            out[key] = value
    return out


def replayable(row) -> dict:
    event, errors = load_event(row.payload)
    if errors:  # stored events passed this check once; a failure here is a bug
        raise ValueError(f"stored event {row.id} no longer loads: {errors}")
    event["rep_id"] = row.rep_id
    if event["type"] == "lead.assigned":
        event["to_rep_id"] = row.to_rep_id
    return event


def rebuild_all() -> int:
    """Rebuild every branch, one transaction each; return the events replayed."""
    codes = db.session.scalars(
        select(OrgUnit.code).where(OrgUnit.kind == "branch").distinct()
    ).all()
    total = 0
    for code in codes:
        total += rebuild_branch(code)
        db.session.commit()
    return total
