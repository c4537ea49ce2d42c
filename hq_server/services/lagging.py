"""Find lagging branches (and regions, and reps), say why in numbers, keep the history.

A scan judges the last finished ISO week: rates against peers with the same
parent (funnel-plot limits, over-dispersion, minimum n), visits per rep against
Poisson limits and the playbook minimum, each branch's own trend, silent
branches, open seq gaps and late-arriving events. A flag is keyed by (check,
metric, unit, week), so a rescan updates instead of duplicating; a unit found
back inside its limits has its open flags resolved. Everything is re-derived
from PostgreSQL, so a scan that did not run catches up on the next one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.metrics import lagging as maths
from hq_server.models import OrgUnit
from hq_server.services.rows import to_json

log = logging.getLogger(__name__)

# metric -> (label en/zh, noun en/zh); the counts come from the queries below.
RATES = {
    "win_rate": (("win rate", "赢单率"), ("closed deals", "个已结束商机")),
    "quote_to_won": (("quote→won", "报价→成交"), ("quoted deals", "个已报价商机")),
    "dm_visit_rate": (
        ("visits meeting the decision maker", "见到决策人的拜访占比"),
        ("visits", "次拜访"),
    ),
    "contact_rate": (("calls that connected", "电话接通率"), ("calls", "次电话")),
}
SILENT_HOURS = 24.0
LATE_P90_SECONDS = 48 * 3600.0
MIN_N = 20


@dataclass(frozen=True)
class Week:
    start: date
    end: date  # inclusive

    @classmethod
    def finished_before(cls, day: date) -> Week:
        monday = day - timedelta(days=day.weekday())
        return cls(monday - timedelta(days=7), monday - timedelta(days=1))


def _branches() -> list[OrgUnit]:
    return list(
        db.session.scalars(
            select(OrgUnit).where(
                OrgUnit.kind.in_(["branch", "region"]), OrgUnit.active_to.is_(None)
            )
        )
    )


def _rate_counts(week: Week) -> dict[str, dict[str, tuple[int, int]]]:
    """Return metric -> branch code -> (successes, trials) for the week."""
    params = {"s": week.start, "e": week.end}
    out: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for code, won, lost, quoted, quoted_won in db.session.execute(
        text(
            "SELECT b.code, count(*) FILTER (WHERE d.status = 'won'), "
            "count(*) FILTER (WHERE d.status = 'lost'), "
            "count(*) FILTER (WHERE d.reached_at ? 'quote'), "
            "count(*) FILTER (WHERE d.reached_at ? 'quote' AND d.status = 'won') "
            "FROM deals d JOIN org_units b ON b.id = d.branch_id "
            "WHERE d.closed_day BETWEEN :s AND :e GROUP BY b.code"
        ),
        params,
    ):
        out["win_rate"][code] = (won, won + lost)
        out["quote_to_won"][code] = (quoted_won, quoted)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for code, metric, value in db.session.execute(
        text(
            "SELECT b.code, r.metric, sum(r.value) FROM daily_rollups r "
            "JOIN org_units b ON b.id = r.branch_id WHERE r.day BETWEEN :s AND :e AND r.metric IN "
            "('visits', 'visits_decision_maker', 'calls', 'calls_connected') "
            "GROUP BY b.code, r.metric"
        ),
        params,
    ):
        sums[code][metric] = int(value)
    for code, m in sums.items():
        out["dm_visit_rate"][code] = (m["visits_decision_maker"], m["visits"])
        out["contact_rate"][code] = (m["calls_connected"], m["calls"])
    return out


def scan_lagging(now: datetime | None = None) -> dict[str, int]:
    """Judge the last finished week for every branch, region and rep; return flag counts."""
    now = now or datetime.now(UTC)
    week = Week.finished_before(now.date())
    units = _branches()
    by_code = {u.code: u for u in units}
    parents = {u.id: u for u in units}
    rows: list[dict] = []
    healthy: list[tuple[str, str, str]] = []
    counts = _rate_counts(week)
    for metric, per_branch in counts.items():
        groups = _peer_groups(per_branch, by_code, parents)
        for parent_code, members in groups.items():
            for flag in maths.rate_flags(members, min_n=MIN_N):
                _collect(
                    rows,
                    healthy,
                    "peers",
                    metric,
                    flag,
                    by_code[flag.code],
                    parent_code,
                    week,
                    maths.rate_reason(flag, *RATES[metric])
                    if flag.status in ("warn", "alert")
                    else None,
                )
    rows += _rep_visits(week, by_code, healthy)
    rows += _trends(week, by_code, healthy)
    rows += _silence_and_gaps(now, week, units)
    _upsert(rows)
    _resolve(healthy, week)
    found = defaultdict(int)
    for row in rows:
        found[row["check"]] += 1
    log.info("lagging scan of week %s: %s", week.start, dict(found))
    return dict(found)


def _peer_groups(per_branch, by_code, parents) -> dict[str, list[tuple[str, int, int]]]:
    """Branches grouped under their region, and regions grouped under HQ."""
    groups: dict[str, list] = defaultdict(list)
    regions: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for code, (x, n) in per_branch.items():
        branch = by_code.get(code)
        if branch is None or branch.kind != "branch":
            continue
        region = parents.get(branch.parent_id)
        if region is None:
            continue
        groups[region.code].append((code, x, n))
        regions[region.code][0] += x
        regions[region.code][1] += n
    groups["HQ"] = [(code, x, n) for code, (x, n) in regions.items()]
    return groups


def _collect(rows, healthy, check, metric, flag, unit, parent_code, week, reason) -> None:
    if flag.status not in ("warn", "alert"):
        if flag.status != "insufficient":
            healthy.append((check, metric, unit.code))
        return
    limit = flag.lower_alert if flag.status == "alert" else flag.lower_warn
    rows.append(
        _row(
            check,
            metric,
            unit,
            parent_code,
            week,
            flag.status,
            reason,
            value=flag.rate,
            n=flag.n,
            peer=flag.p0,
            limit=limit,
            z=flag.z,
            details={"x": flag.x, "phi": flag.phi},
        )
    )


def _row(
    check,
    metric,
    unit,
    parent_code,
    week,
    severity,
    reason,
    *,
    value=None,
    n=None,
    peer=None,
    limit=None,
    z=None,
    details=None,
) -> dict:
    return {
        "key": f"{check}:{metric}:{unit.code}:{week.start}",
        "unit_code": unit.code,
        "unit_kind": unit.kind,
        "parent_code": parent_code,
        "unit_path": unit.path,
        "metric": metric,
        "check": check,
        "period_kind": "week",
        "period_start": week.start,
        "period_end": week.end,
        "value": value,
        "n": n,
        "peer_value": peer,
        "limit": limit,
        "z": z,
        "severity": severity,
        "status": "open",
        "reason": {"en": reason.en, "zh": reason.zh},
        "details": details or {},
        "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC),
    }


def _rep_visits(week: Week, by_code: dict, healthy: list) -> list[dict]:
    """Visits per rep against Poisson limits of the branch's reps and the playbook minimum."""
    from hq_server.services import playbooks

    minimum = None
    current = playbooks.latest()
    if current is not None:
        quotas = [
            r
            for r in playbooks.compiled(current.version, current.document).rules_of_kind("quota")
            if r.event_type == "visit.logged" and r.per == "rep"
        ]
        minimum = quotas[0].minimum if quotas else None
    per_branch: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for branch_code, rep_code, visits in db.session.execute(
        text(
            "SELECT b.code, p.code, coalesce(sum(r.value) FILTER (WHERE r.metric = 'visits'), 0) "
            "FROM reps p JOIN org_units b ON b.id = p.branch_id LEFT JOIN daily_rollups r "
            "ON r.rep_id = p.id AND r.day BETWEEN :s AND :e WHERE p.active "
            "GROUP BY b.code, p.code"
        ),
        {"s": week.start, "e": week.end},
    ):
        per_branch[branch_code].append((rep_code, int(visits)))
    rows = []
    for branch_code, reps in per_branch.items():
        branch = by_code.get(branch_code)
        if branch is None:
            continue
        for flag in maths.count_flags(reps, minimum):
            if flag.status not in ("warn", "alert") and not flag.below_minimum:
                continue
            reason = maths.count_reason(flag, ("visits", "拜访次数"))
            rep_unit = _RepUnit(flag.code, branch.path)
            rows.append(
                _row(
                    "poisson",
                    "visits",
                    rep_unit,
                    branch_code,
                    week,
                    flag.status if flag.status in ("warn", "alert") else "warn",
                    reason,
                    value=flag.count,
                    peer=flag.lam0,
                    limit=flag.lower_warn,
                    z=flag.z,
                    details={"minimum": minimum, "below_minimum": flag.below_minimum},
                )
            )
    return rows


def _trends(week: Week, by_code: dict, healthy: list) -> list[dict]:
    """Branches below their own 8-week median of visits for 3 weeks running."""
    first = week.start - timedelta(weeks=10)
    weekly: dict[str, dict[date, float]] = defaultdict(dict)
    for code, monday, visits in db.session.execute(
        text(
            "SELECT b.code, date_trunc('week', r.day)::date, sum(r.value) FROM daily_rollups r "
            "JOIN org_units b ON b.id = r.branch_id WHERE r.metric = 'visits' "
            "AND r.day BETWEEN :s AND :e GROUP BY 1, 2"
        ),
        {"s": first, "e": week.end},
    ):
        weekly[code][monday] = float(visits)
    mondays = [first + timedelta(weeks=i) for i in range(11)]
    rows = []
    for code, by_week in weekly.items():
        unit = by_code.get(code)
        if unit is None or unit.kind != "branch":
            continue
        trend = maths.trend_run([by_week.get(m, 0.0) for m in mondays])
        if not trend.flagged:
            if trend.baseline is not None:
                healthy.append(("trend", "visits", code))
            continue
        rows.append(
            _row(
                "trend",
                "visits",
                unit,
                None,
                week,
                "warn",
                maths.trend_reason(trend, ("visits", "拜访次数")),
                value=by_week.get(mondays[-1], 0.0),
                peer=trend.baseline,
                details={"run_length": trend.run_length},
            )
        )
    return rows


@dataclass(frozen=True)
class _RepUnit:
    code: str
    path: str
    kind: str = "rep"


def _silence_and_gaps(now: datetime, week: Week, units: list[OrgUnit]) -> list[dict]:
    """Branches that went quiet, lost events on the way, or send them late."""
    pushes = dict(
        db.session.execute(
            text(
                "SELECT b.code, max(s.last_push_at) FROM agent_streams s "
                "JOIN org_units b ON b.id = s.branch_id GROUP BY b.code"
            )
        ).all()
    )
    gaps = dict(
        db.session.execute(
            text(
                "SELECT b.code, sum(g.last_seq - g.first_seq + 1) FROM seq_gaps g "
                "JOIN org_units b ON b.id = g.branch_id GROUP BY b.code"
            )
        ).all()
    )
    lags = defaultdict(list)
    for code, lag in db.session.execute(
        text(
            "SELECT b.code, extract(epoch FROM e.received_at - e.occurred_at) FROM events e "
            "JOIN org_units b ON b.id = e.branch_id WHERE e.local_day BETWEEN :s AND :e"
        ),
        {"s": week.start, "e": week.end},
    ):
        lags[code].append(float(lag))
    rows = []
    for unit in (u for u in units if u.kind == "branch"):
        last = pushes.get(unit.code)
        hours = None if last is None else (now - last).total_seconds() / 3600
        silence = maths.silent_branch(hours, SILENT_HOURS)
        if silence.flagged and last is not None:  # never pushed: not deployed yet
            rows.append(
                _row(
                    "silent",
                    "last_push",
                    unit,
                    None,
                    week,
                    "warn",
                    maths.silence_reason(silence),
                    value=hours,
                    limit=SILENT_HOURS,
                )
            )
        if gaps.get(unit.code):
            missing = int(gaps[unit.code])
            rows.append(
                _row(
                    "gaps",
                    "seq_gaps",
                    unit,
                    None,
                    week,
                    "alert",
                    maths.Reason(
                        f"{missing} event(s) never arrived from the agent (gaps in its sequence)",
                        f"代理端有 {missing} 条记录未送达总部(序号缺口)",
                    ),
                    value=missing,
                )
            )
        timely = maths.timeliness(lags.get(unit.code, []), LATE_P90_SECONDS)
        if timely.flagged:
            rows.append(
                _row(
                    "late",
                    "p90_lag_s",
                    unit,
                    None,
                    week,
                    "warn",
                    maths.timeliness_reason(timely),
                    value=timely.p90,
                    limit=LATE_P90_SECONDS,
                    n=timely.count,
                )
            )
    return rows


def _upsert(rows: list[dict]) -> None:
    if not rows:
        return
    columns = ", ".join(f'"{c}"' for c in rows[0])  # "check" and "limit" are SQL words
    updates = ", ".join(
        f'"{c}" = EXCLUDED."{c}"'
        for c in (
            "value",
            "n",
            "peer_value",
            "limit",
            "z",
            "severity",
            "reason",
            "details",
            "updated_at",
        )
    )
    db.session.execute(
        text(
            f"INSERT INTO lagging_flags ({columns}) SELECT {columns} FROM "
            "json_populate_recordset(NULL::lagging_flags, :rows) ON CONFLICT (key) DO UPDATE SET "
            f"{updates}, status = CASE WHEN lagging_flags.status = 'resolved' THEN 'open' "
            "ELSE lagging_flags.status END, resolved_at = NULL"
        ),
        {"rows": to_json(rows)},
    )


def _resolve(healthy: list[tuple[str, str, str]], week: Week) -> None:
    """Resolve open flags of units now back inside their limits."""
    for check, metric, code in healthy:
        db.session.execute(
            text(
                "UPDATE lagging_flags SET status = 'resolved', resolved_at = now() "
                "WHERE \"check\" = :c AND metric = :m AND unit_code = :u AND status <> 'resolved' "
                "AND period_start <= :w"
            ),
            {"c": check, "m": metric, "u": code, "w": week.start},
        )
