"""Find lagging branches (and regions, and reps), say why in numbers, keep the history.

A scan judges the last finished ISO week: rates against peers with the same
parent (funnel-plot limits, over-dispersion, minimum n), visits per rep against
Poisson limits and the playbook minimum, each branch's own trend, silent
branches, failing pushes (over the last 24 hours), open seq gaps and
late-arriving events. A flag is keyed by (check, metric, unit, week), so a
rescan updates instead of duplicating; a unit found back inside its limits has
its open flags resolved. Everything is re-derived from PostgreSQL, so a scan
that did not run catches up on the next one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select, text

from hq_server.extensions import db
from hq_server.metrics import lagging as maths
from hq_server.models import OrgUnit
from hq_server.services import lagging_checks as checks
from hq_server.services.lagging_checks import Week
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
MIN_N = 20


def _branches() -> list[OrgUnit]:
    return list(
        db.session.scalars(
            select(OrgUnit).where(
                OrgUnit.kind.in_(["branch", "region"]), OrgUnit.active_to.is_(None)
            )
        )
    )


def scan_lagging(now: datetime | None = None) -> dict[str, int]:
    """Judge the last finished week for every branch, region and rep; return flag counts."""
    now = now or datetime.now(UTC)
    week = Week.finished_before(now.date())
    units = _branches()
    by_code = {u.code: u for u in units}
    parents = {u.id: u for u in units}
    rows: list[dict] = []
    healthy: list[tuple[str, str, str]] = []
    counts = checks.rate_counts(week)
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
    rows += checks.rep_visits(week, by_code, healthy)
    rows += checks.trends(week, by_code, healthy)
    rows += checks.silence_and_gaps(now, week, units)
    rows += checks.failing_pushes(now, week, units, healthy)
    opened = _upsert(rows)
    _resolve(healthy, week)
    _tell(rows, opened)
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
        checks.flag_row(
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


def _tell(rows: list[dict], opened: set[str]) -> None:
    """Notify the managers over each newly flagged unit (once per flag, by its key)."""
    from hq_server.services.notify import notify

    for row in rows:
        if row["key"] not in opened:
            continue
        unit = row["parent_code"] if row["unit_kind"] == "rep" else row["unit_code"]
        roles = (
            ("region_manager", "hq_manager")
            if row["unit_kind"] == "region"
            else ("branch_manager", "region_manager")
        )
        notify(
            "lagging",
            unit,
            row["reason"],
            {
                "unit": row["unit_code"],
                "check": row["check"],
                "metric": row["metric"],
                "severity": row["severity"],
                "week": str(row["period_start"]),
            },
            key=f"lagging:{row['key']}",
            roles=roles,
        )


def _upsert(rows: list[dict]) -> set[str]:
    """Insert or refresh flags; return the keys of the ones that are new."""
    if not rows:
        return set()
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
    result = db.session.execute(
        text(
            f"INSERT INTO lagging_flags ({columns}) SELECT {columns} FROM "
            "json_populate_recordset(NULL::lagging_flags, :rows) ON CONFLICT (key) DO UPDATE SET "
            f"{updates}, status = CASE WHEN lagging_flags.status = 'resolved' THEN 'open' "
            "ELSE lagging_flags.status END, resolved_at = NULL "
            "RETURNING key, (xmax = 0) AS inserted"
        ),
        {"rows": to_json(rows)},
    )
    return {key for key, inserted in result if inserted}


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
