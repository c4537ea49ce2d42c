"""Judge pushed events by the playbook in force when they happened, inside the push.

Each event gets the verdicts of its rules; a violation row per verdict (unique
per event and rule, so a re-sent event opens nothing twice); an approval row
for approval rules; and events with a ``block`` verdict are stored as
``pending``: they count nowhere until approved. Compliance counts (events
checked and violated per rule) go to the daily rollups.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from hq_server.models import OrgUnit
from hq_server.services import playbooks
from hq_server.services.rows import execute_binary, to_json


@dataclass
class Judgement:
    """Verdicts per event id, and which events are blocked."""

    verdicts: dict[uuid.UUID, list] = field(default_factory=dict)
    blocked: set[uuid.UUID] = field(default_factory=set)
    checked: dict[uuid.UUID, list[str]] = field(default_factory=dict)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)


def judge(conn, events: list[dict]) -> Judgement:
    """Return the verdicts of every event (no writes; stored or not, the same verdicts)."""
    result = Judgement()
    timeline = playbooks.Timeline.load(conn)
    if not timeline.rows:
        return result
    from shared.playbook import check_event

    history = _deal_history(conn, events)

    def priors(deal_id, types):
        return [e for e in history.get(str(deal_id), ()) if e["type"] in types]

    for event in events:
        version = timeline.version_at(event["occurred_at"])
        if version is None:
            continue
        playbook = playbooks.compiled(version)
        rules = playbook.event_rules(event["type"])
        if not rules:
            continue
        verdicts = check_event(playbook, _wire(event), priors)
        result.versions[event["id"]] = version
        result.checked[event["id"]] = [rule.id for rule in rules]
        if verdicts:
            result.verdicts[event["id"]] = verdicts
            if any(v.severity == "block" for v in verdicts):
                result.blocked.add(event["id"])
    return result


def _wire(event: dict) -> dict:
    """Return the event as the engine sees it on both sides (wire field names)."""
    out = {k: event[k] for k in ("id", "type", "occurred_at", "rep", "data") if k in event}
    for key in ("deal", "customer"):
        if event.get(key) is not None:
            out[key] = str(event[key]) if key == "deal" else event[key]
    out["id"] = str(event["id"])
    return out


def _deal_history(conn, events: list[dict]) -> dict[str, list[dict]]:
    """Return the stored and in-batch events of every deal the batch touches.

    The batch's own events come from the batch, once: a push judges them after storing them.
    """
    deals = list({e["deal"] for e in events if e.get("deal")})
    history: dict[str, list[dict]] = defaultdict(list)
    if deals:
        rows = execute_binary(
            conn,
            "SELECT payload FROM events WHERE deal_id = ANY(%(d)b) AND status <> 'refused' "
            "AND id <> ALL(%(own)b)",
            {"d": deals, "own": [e["id"] for e in events]},
        )
        for (payload,) in rows:
            payload["occurred_at"] = datetime.fromisoformat(payload["occurred_at"])
            history[payload["deal"]].append(payload)
    for event in events:
        if event.get("deal"):
            history[str(event["deal"])].append(_wire(event))
    return history


def record_judgement(
    conn, branch: OrgUnit, events: list[dict], judgement: Judgement, now: datetime
) -> None:
    """Write violations, approvals and compliance counts for judged events."""
    by_id = {e["id"]: e for e in events}
    violations, approvals, counts = [], [], defaultdict(Decimal)
    tz = ZoneInfo(branch.timezone)
    for event_id, rule_ids in judgement.checked.items():
        event = by_id[event_id]
        day = event["occurred_at"].astimezone(tz).date()
        broken = {v.rule_id for v in judgement.verdicts.get(event_id, [])}
        for rule_id in rule_ids:
            counts[(event["rep_id"], day, f"rule_checked:{rule_id}")] += 1
            if rule_id in broken:
                counts[(event["rep_id"], day, f"rule_violated:{rule_id}")] += 1
    for event_id, verdicts in judgement.verdicts.items():
        event = by_id[event_id]
        for v in verdicts:
            violations.append(
                {
                    "key": f"event:{event_id}:{v.rule_id}",
                    "rule_id": v.rule_id,
                    "kind": v.kind,
                    "playbook_version": v.version,
                    "severity": v.severity,
                    "branch_id": branch.id,
                    "rep_id": event["rep_id"],
                    "event_id": event_id,
                    "deal_id": event.get("deal"),
                    "message": v.message,
                    "details": v.as_dict(),
                    "status": "open",
                    "occurred_at": event["occurred_at"],
                    "created_at": now,
                }
            )
        routed = [v for v in verdicts if v.kind == "approval" and v.severity == "block"]
        if routed:
            approvals.append(
                {
                    "event_id": event_id,
                    "rule_ids": [v.rule_id for v in routed],
                    "approver_role": routed[0].approver or "region_manager",
                    "branch_id": branch.id,
                    "status": "pending",
                    "created_at": now,
                }
            )
    _insert(conn, "violations", violations, "(key)")
    _insert(conn, "approvals", approvals, "(event_id)")
    if counts:
        from hq_server.services.ingest import upsert_rollups

        upsert_rollups(conn, branch, counts)


def _insert(conn, table: str, rows: list[dict], conflict: str) -> None:
    if not rows:
        return
    columns = ", ".join(rows[0])
    conn.execute(
        text(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM "
            f"json_populate_recordset(NULL::{table}, :rows) ON CONFLICT {conflict} DO NOTHING"
        ),
        {"rows": to_json(rows)},
    )
