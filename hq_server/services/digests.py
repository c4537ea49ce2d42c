"""Weekly and monthly reviews of each region: built once per period, sent to its managers.

Days are the local calendar days the rollups and deals already carry; moments
(violations, lagging flags) are placed on the region's calendar. A digest is
a snapshot: events pushed after it was built show in the live reports, not in
the digest, and its unique key keeps a rebuild from making a second one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB

from hq_server.extensions import db
from hq_server.metrics.funnel import win_rate
from hq_server.models import Digest, OrgUnit
from hq_server.services.notify import notify
from hq_server.services.scope import OutOfScope, Principal, resolve_unit, unit_paths

KINDS = ("weekly", "monthly")
ACTIVITY = ("visits", "visits_decision_maker", "calls", "quotes")
DIGEST_ROLES = ("region_manager", "hq_manager")
MAX_FLAGS_LISTED = 20

_INSERT = text(
    "INSERT INTO digests (key, region_code, kind, period_start, period_end, content, created_at) "
    "VALUES (:key, :region, :kind, :start, :end, :content, now()) "
    "ON CONFLICT (key) DO NOTHING RETURNING id"
).bindparams(bindparam("content", type_=JSONB))


class DigestNotFound(LookupError):
    """No digest with this id, or not in the caller's scope."""


def period_of(kind: str, period_end: date) -> tuple[date, date]:
    """Return the first and last day of the ISO week or calendar month ending on ``period_end``."""
    if kind == "weekly":
        if period_end.isoweekday() != 7:
            raise ValueError("a weekly digest ends on a Sunday")
        return period_end - timedelta(days=6), period_end
    if kind == "monthly":
        if (period_end + timedelta(days=1)).day != 1:
            raise ValueError("a monthly digest ends on the last day of a month")
        return period_end.replace(day=1), period_end
    raise ValueError(f"kind must be one of {', '.join(KINDS)}")


def last_finished(kind: str, today: date) -> date:
    """Return the last day of the latest week or month that ended before ``today``."""
    if kind == "weekly":
        return today - timedelta(days=today.isoweekday())
    return today.replace(day=1) - timedelta(days=1)


def build_digests(kind: str, period_end: date, now: datetime | None = None) -> int:
    """Build the digest of every region whose period is over locally; return how many are new.

    Each new digest notifies the region's managers and HQ. The caller commits.
    """
    start, end = period_of(kind, period_end)
    now = now or datetime.now(UTC)
    regions = db.session.scalars(
        select(OrgUnit)
        .where(OrgUnit.kind == "region", OrgUnit.active_to.is_(None))
        .order_by(OrgUnit.code)
    ).all()
    created = 0
    for region in regions:
        if now.astimezone(ZoneInfo(region.timezone)).date() <= end:
            continue  # the period is not over in this region yet
        key = f"{kind}:{region.code}:{start.isoformat()}"
        if db.session.scalar(select(Digest.id).where(Digest.key == key)) is not None:
            continue
        row = {"key": key, "region": region.code, "kind": kind, "start": start, "end": end}
        row["content"] = region_content(region, kind, start, end)
        digest_id = db.session.execute(_INSERT, row).scalar()
        if digest_id is None:
            continue  # built concurrently
        created += 1
        body = {"digest_id": digest_id, "kind": kind, "region": region.code}
        body.update(period={"from": start.isoformat(), "to": end.isoformat()})
        notify("digest", region.code, _subject(kind, region, start, end), body, key, DIGEST_ROLES)
    return created


def _subject(kind: str, region: OrgUnit, start: date, end: date) -> dict:
    en = "Weekly review" if kind == "weekly" else "Monthly review"
    zh = "周报" if kind == "weekly" else "月报"
    return {
        "en": f"{en}: {region.name}, {start.isoformat()} to {end.isoformat()}",
        "zh": f"{region.name}{zh}:{start.isoformat()} 至 {end.isoformat()}",
    }


def _raw() -> dict:
    return {
        "opened": 0,
        "won": 0,
        "lost": 0,
        "won_amount": Decimal(0),
        **{m: 0 for m in ACTIVITY},
        "checked": defaultdict(int),
        "violated": defaultdict(int),
        "sla_violations": 0,
        "lagging_opened": 0,
        "lagging_resolved": 0,
    }


def _add(into: dict, raw: dict) -> None:
    for name, value in raw.items():
        if isinstance(value, dict):
            for rule, count in value.items():
                into[name][rule] += count
        else:
            into[name] += value


def _compliance(checked: int, violated: int) -> float | None:
    return None if not checked else 1 - violated / checked


def _figures(raw: dict) -> dict:
    rules = sorted(set(raw["checked"]) | set(raw["violated"]))
    checked, violated = sum(raw["checked"].values()), sum(raw["violated"].values())
    return {
        "deals": {
            "opened": raw["opened"],
            "won": raw["won"],
            "lost": raw["lost"],
            "win_rate": win_rate(raw["won"], raw["lost"]),
            "won_amount": float(raw["won_amount"]),
        },
        "activity": {m: raw[m] for m in ACTIVITY},
        "compliance": {
            "checked": checked,
            "violated": violated,
            "rate": _compliance(checked, violated),
            "rules": [
                {
                    "rule_id": rule,
                    "checked": raw["checked"][rule],
                    "violated": raw["violated"][rule],
                    "compliance": _compliance(raw["checked"][rule], raw["violated"][rule]),
                }
                for rule in rules
            ],
        },
        "sla_violations": raw["sla_violations"],
        "lagging": {"opened": raw["lagging_opened"], "resolved": raw["lagging_resolved"]},
    }


def region_content(region: OrgUnit, kind: str, start: date, end: date) -> dict:
    """Return the figures of a region and of each of its branches for a period."""
    region_paths = unit_paths(region.code)
    under = db.or_(*(OrgUnit.path.startswith(p, autoescape=True) for p in region_paths))
    branches = db.session.execute(
        select(OrgUnit.id, OrgUnit.code, OrgUnit.name, OrgUnit.path)
        .where(OrgUnit.kind == "branch", under)
        .order_by(OrgUnit.code, OrgUnit.active_from)
    ).all()
    code_of = {b.id: b.code for b in branches}
    names = {b.code: b.name for b in branches}  # the latest name of each code
    raws: dict[str, dict] = {code: _raw() for code in names}
    params = {"b": list(code_of), "s": start, "e": end, "tz": region.timezone}
    for branch_id, name, value in _branch_counts(params):
        raw = raws[code_of[branch_id]]
        if name.startswith(("rule_checked:", "rule_violated:")):
            which, rule = name.split(":", 1)
            raw["checked" if which == "rule_checked" else "violated"][rule] += int(value)
        else:
            raw[name] += value if name == "won_amount" else int(value)
    totals = _raw()
    for raw in raws.values():
        _add(totals, raw)
    listed = _lagging(region_paths, branches, raws, totals, params)
    return {
        "region": {"code": region.code, "name": region.name, "timezone": region.timezone},
        "kind": kind,
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "totals": _figures(totals),
        "branches": [{"code": c, "name": names[c], **_figures(raws[c])} for c in sorted(raws)],
        "lagging_opened": listed,
    }


def _branch_counts(params: dict) -> list[tuple[int, str, Decimal]]:
    """Return (branch id, figure, value) rows from deals, rollups and SLA violations."""
    closed = "closed_day BETWEEN :s AND :e"
    deals = db.session.execute(
        text(
            "SELECT branch_id, count(*) FILTER (WHERE opened_day BETWEEN :s AND :e), "
            f"count(*) FILTER (WHERE status = 'won' AND {closed}), "
            f"count(*) FILTER (WHERE status = 'lost' AND {closed}), "
            f"coalesce(sum(amount) FILTER (WHERE status = 'won' AND {closed}), 0) "
            "FROM deals WHERE branch_id = ANY(:b) GROUP BY branch_id"
        ),
        params,
    ).all()
    rows = []
    for branch_id, opened, won, lost, amount in deals:
        rows += [(branch_id, "opened", opened), (branch_id, "won", won)]
        rows += [(branch_id, "lost", lost), (branch_id, "won_amount", amount)]
    rows += db.session.execute(
        text(
            "SELECT branch_id, metric, sum(value) FROM daily_rollups WHERE branch_id = ANY(:b) "
            "AND day BETWEEN :s AND :e AND (metric = ANY(:m) OR metric LIKE 'rule_checked:%' "
            "OR metric LIKE 'rule_violated:%') GROUP BY branch_id, metric"
        ),
        {**params, "m": list(ACTIVITY)},
    ).all()
    # An SLA violation opens when its deadline passes (its occurred_at).
    rows += db.session.execute(
        text(
            "SELECT branch_id, 'sla_violations', count(*) FROM violations WHERE kind = 'sla' "
            "AND branch_id = ANY(:b) AND (occurred_at AT TIME ZONE :tz)::date BETWEEN :s AND :e "
            "GROUP BY branch_id"
        ),
        params,
    ).all()
    return rows


def _lagging(region_paths, branches, raws: dict, totals: dict, params: dict) -> list[dict]:
    """Count flags opened and resolved in the period per branch and region; list the opened."""
    flags = db.session.execute(
        text(
            'SELECT unit_code, unit_path, metric, "check", severity, reason, '
            "(created_at AT TIME ZONE :tz)::date BETWEEN :s AND :e AS opened, "
            "coalesce((resolved_at AT TIME ZONE :tz)::date BETWEEN :s AND :e, false) AS resolved "
            "FROM lagging_flags WHERE unit_path LIKE ANY(:patterns) "
            "ORDER BY severity = 'alert' DESC, created_at, id"
        ),
        {**params, "patterns": [f"{p}%" for p in region_paths]},  # paths are digits and /
    ).all()
    listed = []
    for flag in flags:
        owner = next((b.code for b in branches if flag.unit_path.startswith(b.path)), None)
        for happened, name in (
            (flag.opened, "lagging_opened"),
            (flag.resolved, "lagging_resolved"),
        ):
            if happened:
                totals[name] += 1
                if owner is not None:
                    raws[owner][name] += 1
        if flag.opened and len(listed) < MAX_FLAGS_LISTED:
            listed.append(
                {
                    "unit": flag.unit_code,
                    "metric": flag.metric,
                    "check": flag.check,
                    "severity": flag.severity,
                    "reason": flag.reason,
                }
            )
    return listed


def _digest_dict(digest: Digest, content: bool) -> dict:
    out = {
        "id": digest.id,
        "key": digest.key,
        "region": digest.region_code,
        "kind": digest.kind,
        "period": {"from": digest.period_start.isoformat(), "to": digest.period_end.isoformat()},
        "created_at": digest.created_at.isoformat(),
    }
    if content:
        out["content"] = digest.content
    return out


def list_digests(
    principal: Principal, unit: str, kind: str | None = None, limit: int = 20
) -> list[dict]:
    """Return the newest digests of the regions under ``unit`` (without their content)."""
    resolve_unit(principal, unit)
    scope = list(
        db.session.scalars(select(OrgUnit.path).where(OrgUnit.code == principal.scope_code))
    )
    wanted = list(db.session.scalars(select(OrgUnit.path).where(OrgUnit.code == unit)))
    regions = {
        code
        for code, path in db.session.execute(
            select(OrgUnit.code, OrgUnit.path).where(OrgUnit.kind == "region")
        )
        if any(path.startswith(p) for p in wanted) and any(path.startswith(s) for s in scope)
    }
    query = select(Digest).where(Digest.region_code.in_(regions))
    if kind:
        query = query.where(Digest.kind == kind)
    query = query.order_by(Digest.period_end.desc(), Digest.region_code, Digest.id).limit(limit)
    return [_digest_dict(d, content=False) for d in db.session.scalars(query)]


def get_digest(principal: Principal, digest_id: int) -> dict:
    """Return one digest with its content, if the caller may see its region."""
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        raise DigestNotFound(digest_id)
    try:
        resolve_unit(principal, digest.region_code)
    except OutOfScope as exc:
        raise DigestNotFound(digest_id) from exc
    return _digest_dict(digest, content=True)
