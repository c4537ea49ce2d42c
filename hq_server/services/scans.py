"""Timer rules: SLA clocks, quotas per period, stalled deals — re-derived from PostgreSQL.

A scan looks at the state as it is now, not at what changed since the last
run, so it is idempotent (each finding has a unique key) and catches up by
itself after the worker or Redis was down. It runs as an RQ job keyed by the
hour; running it twice creates nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.models import OrgUnit, Rep
from hq_server.services import playbooks
from hq_server.services.rows import to_json

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=35)  # how far back a scan re-checks clocks and periods


def scan_timers(now: datetime | None = None) -> dict[str, int]:
    """Run every timer rule of the playbook in force now over every active branch."""
    from shared.playbook import calendar_for

    now = now or datetime.now(UTC)
    current = playbooks.latest()
    if current is None:
        return {"sla": 0, "quota": 0, "stall": 0}
    playbook = playbooks.compiled(current.version, current.document)
    # Timer rules are not retroactive either: nothing before the first publication counts.
    first = playbooks.Timeline.load(db.session.connection()).times[0]
    found = {"sla": 0, "quota": 0, "stall": 0}
    branches = db.session.scalars(
        select(OrgUnit)
        .where(OrgUnit.kind == "branch", OrgUnit.active_to.is_(None))
        .order_by(OrgUnit.code)
    ).all()
    for branch in branches:
        cal = calendar_for(playbook, lineage(branch))
        since = max(now - LOOKBACK, first)
        rows = [
            *_sla(playbook, branch, cal, now, since),
            *_quota(playbook, branch, now, since),
            *_stall(playbook, branch, now, first),
        ]
        for row in rows:
            found[row["kind"]] += 1
        _upsert(rows)
        _resolve_stalls(branch, playbook, now)
    log.info("timer scan: %s", found)
    return found


def lineage(branch: OrgUnit) -> list[str]:
    """Return the codes from ``branch`` up to HQ (the order calendars are looked up in)."""
    ids = branch.path_ids
    codes = dict(
        db.session.execute(select(OrgUnit.id, OrgUnit.code).where(OrgUnit.id.in_(ids))).all()
    )
    return [codes[i] for i in reversed(ids)]


def _violation(
    playbook,
    rule,
    branch,
    key,
    context,
    *,
    at,
    rep_id=None,
    deal_id=None,
    event_id=None,
    details=None,
) -> dict:
    from shared.playbook import make_verdict

    verdict = make_verdict(playbook, rule, context)
    return {
        "key": key,
        "rule_id": rule.id,
        "kind": rule.kind,
        "playbook_version": playbook.version,
        "severity": rule.severity,
        "branch_id": branch.id,
        "rep_id": rep_id,
        "event_id": event_id,
        "deal_id": deal_id,
        "message": verdict.message,
        "details": {**verdict.as_dict(), **(details or {})},
        "status": "open",
        "occurred_at": at,
        "created_at": datetime.now(UTC),
    }


def _events(branch: OrgUnit, types: list[str], since: datetime):
    return db.session.execute(
        text(
            "SELECT id, rep_id, deal_id, occurred_at, payload FROM events "
            "WHERE branch_id IN (SELECT id FROM org_units WHERE code = :code) "
            "AND type = ANY(:t) AND status = 'counted' AND occurred_at >= :since"
        ),
        {"code": branch.code, "t": types, "since": since},
    ).all()


def _sla(playbook, branch, cal, now, since) -> list[dict]:
    out = []
    for rule in playbook.rules_of_kind("sla"):
        starts = [
            r
            for r in _events(branch, [rule.start_type], since)
            if r.deal_id and rule.starts_on(r.payload)
        ]
        stops = defaultdict(list)
        for r in _events(branch, list(rule.stop_types), since):
            if r.deal_id and rule.stops_on(r.payload):
                stops[r.deal_id].append(r.occurred_at)
        for start in starts:
            answered = min(
                (t for t in stops[start.deal_id] if t >= start.occurred_at), default=None
            )
            status, response_by, late = rule.status(start.occurred_at, answered, now, cal)
            if status != "failed":
                continue
            out.append(
                _violation(
                    playbook,
                    rule,
                    branch,
                    f"sla:{rule.id}:{start.id}",
                    start.payload,
                    at=response_by,
                    rep_id=start.rep_id,
                    deal_id=start.deal_id,
                    event_id=start.id,
                    details={
                        "response_by": response_by.isoformat(),
                        "responded_at": answered.isoformat() if answered else None,
                        "late_working_seconds": late,
                    },
                )
            )
    return out


def _quota(playbook, branch, now, since) -> list[dict]:
    from shared.playbook import period_bounds, quota_shortfall

    out, tz = [], ZoneInfo(branch.timezone)
    reps = db.session.scalars(select(Rep).where(Rep.branch_id == branch.id, Rep.active)).all()
    for rule in playbook.rules_of_kind("quota"):
        if rule.per != "rep":
            continue
        events = _events(branch, [rule.event_type], since - timedelta(days=31))
        day = since.astimezone(tz).date()
        while True:
            start, end = period_bounds(day, rule.period, tz)
            if end > now:
                break  # only finished periods are judged
            if start < since:
                day = end.astimezone(tz).date()
                continue  # a period that began before the rules did
            counts = defaultdict(int)
            for r in events:
                if start <= r.occurred_at < end and rule.counts(r.payload):
                    counts[r.rep_id] += 1
            for rep in reps:
                missing = quota_shortfall(counts[rep.id], rule.minimum)
                if missing:
                    facts = {
                        "rep": rep.code,
                        "branch": branch.code,
                        "count": counts[rep.id],
                        "min": rule.minimum,
                        "period_start": start.date().isoformat(),
                        "period_end": (end - timedelta(days=1)).date().isoformat(),
                    }
                    out.append(
                        _violation(
                            playbook,
                            rule,
                            branch,
                            f"quota:{rule.id}:{rep.id}:{start.date()}",
                            facts,
                            at=end,
                            rep_id=rep.id,
                            details=facts,
                        )
                    )
            day = end.astimezone(tz).date()
    return out


def _stall(playbook, branch, now, first) -> list[dict]:
    from shared.playbook import is_stalled

    out = []
    deals = db.session.execute(
        text(
            "SELECT d.id, d.rep_id, r.code AS rep_code, d.stage, d.customer, "
            "d.last_activity_at FROM deals d LEFT JOIN reps r ON r.id = d.rep_id "
            "WHERE d.branch_id IN (SELECT id FROM org_units WHERE code = :code) "
            "AND d.status = 'open' AND d.last_activity_at IS NOT NULL"
        ),
        {"code": branch.code},
    ).all()
    stages = {s.name: s for s in playbook.stages}
    for rule in playbook.rules_of_kind("stall"):
        for deal in deals:
            stage = stages.get(deal.stage)
            if stage is None or not rule.watches(stage):
                continue
            if not is_stalled(deal.last_activity_at, now, rule.days):
                continue
            if deal.last_activity_at + timedelta(days=rule.days) < first:
                continue  # stalled before there were rules
            idle = (now - deal.last_activity_at).days
            facts = {
                "deal": str(deal.id),
                "customer": deal.customer,
                "rep": deal.rep_code,
                "stage": deal.stage,
                "idle_days": idle,
                "days": rule.days,
                "last_activity_at": deal.last_activity_at.isoformat(),
            }
            out.append(
                _violation(
                    playbook,
                    rule,
                    branch,
                    f"stall:{rule.id}:{deal.id}:{deal.last_activity_at.isoformat()}",
                    facts,
                    at=deal.last_activity_at + timedelta(days=rule.days),
                    rep_id=deal.rep_id,
                    deal_id=deal.id,
                    details=facts,
                )
            )
    return out


def _resolve_stalls(branch: OrgUnit, playbook, now: datetime) -> None:
    """Resolve stall violations of deals that moved again (or closed)."""
    db.session.execute(
        text(
            "UPDATE violations v SET status = 'resolved', resolved_by = 'system', "
            "resolved_at = :now "
            "FROM deals d WHERE v.kind = 'stall' AND v.status <> 'resolved' AND v.deal_id = d.id "
            "AND v.branch_id IN (SELECT id FROM org_units WHERE code = :code) "
            "AND (d.status <> 'open' OR d.last_activity_at::text <> "
            "(v.details->>'last_activity_at')::timestamptz::text)"
        ),
        {"now": now, "code": branch.code},
    )


def _upsert(rows: list[dict]) -> None:
    if not rows:
        return
    columns = ", ".join(rows[0])
    db.session.execute(
        text(
            f"INSERT INTO violations ({columns}) SELECT {columns} FROM "
            "json_populate_recordset(NULL::violations, :rows) ON CONFLICT (key) DO NOTHING"
        ),
        {"rows": to_json(rows)},
    )
