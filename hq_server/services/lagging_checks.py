"""The individual lagging checks: each turns a week's figures into flag rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.metrics import lagging as maths
from hq_server.metrics.weeks import week_of
from hq_server.models import OrgUnit

SILENT_HOURS = 24.0  # working hours when a playbook calendar applies
LATE_P90_SECONDS = 48 * 3600.0
FAILURE_WINDOW = timedelta(hours=24)
FAILED_PUSHES_MIN = 3  # fewer failed pushes in the window are never flagged
FAILED_SHARE_WARN = 0.20
FAILED_SHARE_ALERT = 0.50


@dataclass(frozen=True)
class Week:
    """An ISO week, Monday to Sunday (local days)."""

    start: date
    end: date  # inclusive

    @classmethod
    def finished_before(cls, day: date) -> Week:
        monday = week_of(day)
        return cls(monday - timedelta(days=7), monday - timedelta(days=1))


def rate_counts(week: Week) -> dict[str, dict[str, tuple[int, int]]]:
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


def flag_row(
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


def rep_visits(week: Week, by_code: dict, healthy: list) -> list[dict]:
    """Visits per rep against Poisson limits of the branch's reps and the playbook minimum."""
    from hq_server.services import playbooks

    minimum = None
    # The minimum of the playbook in force when the week began (rules are not retroactive).
    version = playbooks.Timeline.load(db.session.connection()).version_at(
        datetime.combine(week.start, datetime.min.time(), UTC)
    )
    if version is not None:
        quotas = [
            r
            for r in playbooks.compiled(version).rules_of_kind("quota")
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
                flag_row(
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


def trends(week: Week, by_code: dict, healthy: list) -> list[dict]:
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
            flag_row(
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


def silence_and_gaps(now: datetime, week: Week, units: list[OrgUnit]) -> list[dict]:
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
    # Percentiles in the database: a week of events is too many rows to fetch.
    lags = {
        code: maths.Timeliness(count, median, p90, LATE_P90_SECONDS, p90 > LATE_P90_SECONDS)
        for code, count, median, p90 in db.session.execute(
            text(
                "SELECT b.code, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), "
                "percentile_cont(0.9) WITHIN GROUP (ORDER BY lag) FROM (SELECT e.branch_id, "
                "extract(epoch FROM e.received_at - e.occurred_at) AS lag FROM events e "
                "WHERE e.local_day BETWEEN :s AND :e) x JOIN org_units b ON b.id = x.branch_id "
                "GROUP BY b.code"
            ),
            {"s": week.start, "e": week.end},
        )
    }
    calendars = _calendars(units)
    rows = []
    for unit in (u for u in units if u.kind == "branch"):
        last = pushes.get(unit.code)
        hours = None if last is None else _silent_hours(last, now, unit, calendars)
        silence = maths.silent_branch(hours, SILENT_HOURS)
        if silence.flagged and last is not None:  # never pushed: not deployed yet
            rows.append(
                flag_row(
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
                flag_row(
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
        timely = lags.get(unit.code) or maths.timeliness([], LATE_P90_SECONDS)
        if timely.flagged:
            rows.append(
                flag_row(
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


def failing_pushes(now: datetime, week: Week, units: list[OrgUnit], healthy: list) -> list[dict]:
    """Branches whose pushes keep failing: refused with an error, or every event rejected.

    The window is the last 24 hours in whole UTC hours (from the top of the hour 24 hours
    ago), so both counts cover the same pushes. Failures are the rows of ``push_failures``.
    Pushes are the hourly ``push_counts``, written in each push's own transaction (so a push
    rolled back is not in them), plus the failures refused with an HTTP error (the rolled-back
    ones); a push answered 200 with every event rejected is in both, counted once.
    """
    since = (now - FAILURE_WINDOW).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    pushes, codes = _pushes_and_failures(since, now)
    failed = {code: sum(by_code.values()) for code, by_code in codes.items()}
    all_pushes, all_failed = sum(pushes.values()), sum(failed.values())
    rows = []
    for unit in (u for u in units if u.kind == "branch"):
        n, x = pushes.get(unit.code, 0), failed.get(unit.code, 0)
        share = x / n if n else 0.0
        if x < FAILED_PUSHES_MIN or share < FAILED_SHARE_WARN:
            healthy.append(("failing", "push_failures", unit.code))
            continue
        severity, limit = ("alert", FAILED_SHARE_ALERT)
        if share < FAILED_SHARE_ALERT:
            severity, limit = ("warn", FAILED_SHARE_WARN)
        others = all_pushes - n
        peer = (all_failed - x) / others if others else None
        top = min(codes[unit.code].items(), key=lambda kv: (-kv[1], kv[0]))  # commonest
        rows.append(
            flag_row(
                "failing",
                "push_failures",
                unit,
                None,
                week,
                severity,
                _failure_reason(x, n, share, limit, peer, top),
                value=share,
                n=n,
                peer=peer,
                limit=limit,
                details={"failed": x, "codes": codes[unit.code], "since": since.isoformat()},
            )
        )
    return rows


def _pushes_and_failures(since: datetime, now: datetime) -> tuple[dict, dict]:
    """Return branch code -> pushes, and branch code -> error code -> failed pushes."""
    window = {"s": since, "e": now}
    pushes: dict[str, int] = defaultdict(int)
    for code, total in db.session.execute(
        text(
            "SELECT b.code, sum(c.pushes) FROM push_counts c "
            "JOIN org_units b ON b.id = c.branch_id WHERE c.hour >= :s AND c.hour <= :e "
            "GROUP BY 1"
        ),
        window,
    ):
        pushes[code] += int(total)
    codes: dict[str, dict[str, int]] = defaultdict(dict)
    for code, error, status, count in db.session.execute(
        text(
            "SELECT b.code, f.code, f.http_status, count(*) FROM push_failures f "
            "JOIN org_units b ON b.id = f.branch_id WHERE f.at >= :s AND f.at <= :e "
            "GROUP BY 1, 2, 3"
        ),
        window,
    ):
        codes[code][error] = codes[code].get(error, 0) + count
        if status != 200:  # refused: rolled back, so not in push_counts
            pushes[code] += count
    return pushes, codes


def _failure_reason(failed, pushes, share, limit, peer, top) -> maths.Reason:
    pct, lim, (error, times) = f"{share * 100:.0f}%", f"{limit * 100:.0f}%", top
    en = (
        f"{failed} of {pushes} pushes failed in the last 24 hours ({pct}; limit {lim}); "
        f"most often {error} ({times})"
    )
    zh = (
        f"最近 24 小时 {pushes} 次推送中 {failed} 次失败（{pct}；上限 {lim}）；"
        f"最常见 {error}（{times} 次）"
    )
    if peer is not None:
        en, zh = f"{en}; other branches {peer * 100:.0f}%", f"{zh}；其他分公司 {peer * 100:.0f}%"
    return maths.Reason(en, zh)


def _calendars(units: list[OrgUnit]) -> dict:
    """Return each branch's working calendar from the playbook in force (none without one)."""
    from hq_server.services import playbooks
    from hq_server.services.scans import lineage
    from shared.playbook import calendar_for

    current = playbooks.latest()
    if current is None:
        return {}
    playbook = playbooks.compiled(current.version, current.document)
    return {u.code: calendar_for(playbook, lineage(u)) for u in units if u.kind == "branch"}


def _silent_hours(last: datetime, now: datetime, unit: OrgUnit, calendars: dict) -> float:
    """Return the working hours (wall-clock hours without a calendar) since the last push."""
    from shared.playbook import working_seconds

    cal = calendars.get(unit.code)
    if cal is None:
        return (now - last).total_seconds() / 3600
    return working_seconds(last, now, cal) / 3600
