"""Take a branch's pushed events: validate, dedupe, store and project in one transaction.

The caller (the sync view) owns nothing: ``push_batch`` runs every read and
write of one push on the session's connection and the view's teardown commits
or rolls back. Ingest never talks to Redis: work for later is a job-outbox row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.outbox import add_job
from hq_server.metrics import deal_rollups, projection, rollups, seqgaps
from hq_server.metrics.deal_rollups import CURRENT_DAY
from hq_server.metrics.weeks import WEEK_OF, week_of
from hq_server.models import OrgUnit
from hq_server.models.rollups import STRIPES
from hq_server.services import rules
from hq_server.services.deals import load_deals, write_deals
from hq_server.services.pipeline_history import pipeline_state, record_changes
from hq_server.services.rows import execute_binary, execute_plain, hold_lock, to_json
from shared import protocol
from shared.events import canonical_json, hash_canonical, load_event
from shared.stages import STAGES_BY_NAME

LARGE_PUSH = 500  # accepted events that trigger a lagging scan after the push


class PushConflict(RuntimeError):
    """A concurrent push from another branch claimed the same deal ids; retry the batch."""


@dataclass
class _Candidate:
    index: int
    event: dict
    canonical: bytes  # the raw event as canonical JSON: hashed, and stored as the payload
    digest: bytes


@dataclass
class PushOutcome:
    """Per-event results of one push, in request order."""

    results: list[dict]
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "counts": self.counts, "results": self.results}


def _rejected(index: int, event_id, code: str, errors: dict | None = None) -> dict:
    out = {
        "index": index,
        "id": event_id,
        "status": protocol.REJECTED,
        "code": code,
        "message": protocol.REJECTION_MESSAGES[code],
    }
    if errors:
        out["errors"] = errors
    return out


def _ok(index: int, event_id, status: str) -> dict:
    return {"index": index, "id": event_id, "status": status}


def _raw_id(raw) -> str | None:
    return raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None


def push_batch(
    branch: OrgUnit,
    agent_id: str,
    agent_version: str,
    raw_events: list,
    *,
    dry_run: bool = False,
    future_skew: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> PushOutcome:
    """Validate and store one batch pushed by the agent of ``branch``."""
    now = now or datetime.now(UTC)
    results: list[dict | None] = [None] * len(raw_events)
    candidates = _validate(raw_events, results, now + future_skew)
    conn = db.session.connection()
    lock_branch(conn, branch.code)
    owned = _check_ownership(conn, branch, candidates, results)
    if dry_run:  # nothing is stored: look the ids up
        stored = _answer_stored(conn, owned, results)
        accepted = [c for c in owned if c.event["id"] not in stored]
    else:
        # The insert is the duplicate check: what it did not store was stored before.
        accepted = _insert_events(conn, branch, agent_id, owned, now, results)
    for c in accepted:
        results[c.index] = _ok(c.index, str(c.event["id"]), protocol.ACCEPTED)
    judgement = rules.judge(conn, [c.event for c in accepted]) if accepted else None
    if judgement:
        _add_verdicts(results, accepted, judgement)
    if accepted and not dry_run:
        _store(conn, branch, accepted, now, judgement)
    if len(accepted) >= LARGE_PUSH and not dry_run:
        # A big backlog changes the picture: look for lagging units again soon.
        add_job(f"scan_lagging:push:{now:%Y-%m-%dT%H:%M}", "scan_lagging", again=False)
    if not dry_run:
        _track_stream(
            conn, branch, agent_id, agent_version, _arrived_seqs(raw_events), len(accepted), now
        )
    counts = {s: 0 for s in (protocol.ACCEPTED, protocol.DUPLICATE, protocol.REJECTED)}
    for r in results:
        counts[r["status"]] += 1
    return PushOutcome(results=results, dry_run=dry_run, counts=counts)


def lock_branch(conn, code: str) -> None:
    """Wait for the branch's write lock and hold it to the end of the transaction.

    Pushes, approvals and rebuilds of a branch each read what is stored of it (its
    streams' seqs, its deals, its rollups) and write it back: they go one at a time,
    while other branches' run in parallel.
    """
    hold_lock(conn, f"branch:{code}")


def _validate(raw_events: list, results: list, latest: datetime) -> list[_Candidate]:
    """Check each event on its own and against the batch; fill rejections into ``results``."""
    candidates: list[_Candidate] = []
    in_batch: dict[uuid.UUID, bytes] = {}
    for i, raw in enumerate(raw_events):
        event, errors = load_event(raw)
        if errors:
            results[i] = _rejected(i, _raw_id(raw), protocol.INVALID, errors)
            continue
        canonical = canonical_json(raw)
        digest = hash_canonical(canonical)
        eid = event["id"]
        if eid in in_batch:
            same = in_batch[eid] == digest
            results[i] = (
                _ok(i, str(eid), protocol.DUPLICATE)
                if same
                else _rejected(i, str(eid), protocol.CONFLICT)
            )
            continue
        stage_error = _stage_error(event)
        if stage_error:
            results[i] = _rejected(i, str(eid), protocol.INVALID, stage_error)
            continue
        if event["occurred_at"] > latest:
            results[i] = _rejected(
                i, str(eid), protocol.IN_FUTURE, {"occurred_at": ["later than HQ's clock allows"]}
            )
            continue
        in_batch[eid] = digest
        candidates.append(_Candidate(i, event, canonical, digest))
    return candidates


def _stage_error(event: dict) -> dict | None:
    stage = projection.stage_set_by(event)
    if stage is not None and stage not in STAGES_BY_NAME:
        field_name = "to" if event["type"] == "deal.stage_changed" else "stage"
        return {"data": {field_name: [f"unknown stage; one of {', '.join(STAGES_BY_NAME)}"]}}
    return None


def _add_verdicts(results: list, accepted: list[_Candidate], judgement) -> None:
    """Tell the agent, per event, which rules it broke and whether it is held."""
    for c in accepted:
        verdicts = judgement.verdicts.get(c.event["id"])
        if verdicts:
            results[c.index]["violations"] = [v.as_dict() for v in verdicts]
        if c.event["id"] in judgement.blocked:
            results[c.index]["pending"] = True


def _check_ownership(
    conn, branch: OrgUnit, candidates: list[_Candidate], results: list
) -> list[_Candidate]:
    """Keep the events whose reps and deals belong to the branch; resolve their rep ids.

    An event refused here that was stored before is still answered as a duplicate (or a
    conflict): a re-sent event is answered by what was stored, whatever changed since (a
    rep who moved to another branch, say).
    """
    if not candidates:
        return []
    rep_codes = {c.event["rep"] for c in candidates}
    rep_codes |= {
        c.event["data"]["to_rep"] for c in candidates if c.event["type"] == "lead.assigned"
    }
    # Each rep and deal with whether it belongs to the branch (any row of it: a branch
    # that moved region keeps its reps and deals).
    reps = {
        code: (rep_id, own)
        for code, rep_id, own in execute_plain(
            conn, _REPS, {"codes": list(rep_codes), "branch": branch.code}
        )
    }
    deal_ids = list({c.event["deal"] for c in candidates if "deal" in c.event})
    foreign = {
        deal
        for (deal,) in execute_binary(
            conn, _FOREIGN_DEALS, {"ids": deal_ids, "branch": branch.code}
        )
    }
    owned, refused = [], []
    for c in candidates:
        ev = c.event
        code = _ownership_error(ev, reps, foreign)
        if code:
            refused.append((c, code))
            continue
        ev["rep_id"] = reps[ev["rep"]][0]
        if ev["type"] == "lead.assigned":
            ev["to_rep_id"] = reps[ev["data"]["to_rep"]][0]
        owned.append(c)
    if refused:
        stored = _answer_stored(conn, [c for c, _ in refused], results)
        for c, code in refused:
            if c.event["id"] not in stored:
                results[c.index] = _rejected(c.index, str(c.event["id"]), code)
    return owned


def _answer_stored(conn, candidates: list[_Candidate], results: list) -> set:
    """Answer the candidates whose ids are stored; return those ids.

    The same body is a duplicate, another body a conflict.
    """
    if not candidates:
        return set()
    stored = dict(
        execute_binary(
            conn,
            "SELECT id, content_hash FROM events WHERE id = ANY(%(ids)b)",
            {"ids": [c.event["id"] for c in candidates]},
        )
    )
    for c in candidates:
        digest = stored.get(c.event["id"])
        if digest is None:
            continue
        eid = str(c.event["id"])
        results[c.index] = (
            _ok(c.index, eid, protocol.DUPLICATE)
            if bytes(digest) == c.digest
            else _rejected(c.index, eid, protocol.CONFLICT)
        )
    return set(stored)


def _ownership_error(ev: dict, reps: dict, foreign: set) -> str | None:
    for code in (ev["rep"], ev["data"].get("to_rep") if ev["type"] == "lead.assigned" else None):
        if code is None:
            continue
        if code not in reps:
            return protocol.UNKNOWN_REP
        if not reps[code][1]:
            return protocol.REP_OTHER_BRANCH
    if ev.get("deal") in foreign:
        return protocol.DEAL_OTHER_BRANCH
    return None


_REPS = (
    "SELECT r.code, r.id, b.code = %(branch)s FROM reps r JOIN org_units b ON b.id = r.branch_id "
    "WHERE r.code = ANY(%(codes)s)"
)
_FOREIGN_DEALS = (
    "SELECT d.id FROM deals d JOIN org_units b ON b.id = d.branch_id "
    "WHERE d.id = ANY(%(ids)b) AND b.code <> %(branch)s"
)


_INSERT_EVENTS = """
INSERT INTO events (id, branch_id, rep_id, agent_id, seq, type, occurred_at, local_day,
                    received_at, deal_id, customer, playbook_version, content_hash, payload,
                    status)
SELECT id, %(branch)b, rep_id, %(agent)b, seq, type, occurred_at, local_day, %(now)b, deal_id,
       customer, playbook_version, content_hash, payload::jsonb, 'counted'
FROM unnest(%(ids)b::uuid[], %(reps)b::int[], %(seqs)b::bigint[], %(types)b::text[],
            %(occurred)b::timestamptz[], %(days)b::date[], %(deals)b::uuid[],
            %(customers)b::text[], %(versions)b::int[], %(hashes)b::bytea[],
            %(payloads)b::text[])
     AS t(id, rep_id, seq, type, occurred_at, local_day, deal_id, customer, playbook_version,
          content_hash, payload)
ON CONFLICT (id) DO NOTHING RETURNING id
"""


def _insert_events(
    conn, branch: OrgUnit, agent_id: str, candidates: list[_Candidate], now, results: list
) -> list[_Candidate]:
    """Store the candidates' events; answer the ones stored before and return the rest.

    ``ON CONFLICT DO NOTHING`` skips an id already stored, or stored meanwhile by a
    concurrent push of another branch (the insert waits for that push to end), so no
    separate look-up runs before it.
    """
    if not candidates:
        return []
    tz = ZoneInfo(branch.timezone)
    events = [c.event for c in candidates]
    params = {
        "branch": branch.id,
        "agent": agent_id,
        "now": now,
        "ids": [e["id"] for e in events],
        "reps": [e["rep_id"] for e in events],
        "seqs": [e["seq"] for e in events],
        "types": [e["type"] for e in events],
        "occurred": [e["occurred_at"] for e in events],
        "days": [e["occurred_at"].astimezone(tz).date() for e in events],
        "deals": [e.get("deal") for e in events],
        "customers": [e.get("customer") for e in events],
        "versions": [e.get("playbook_version") for e in events],
        "hashes": [c.digest for c in candidates],
        "payloads": [c.canonical.decode() for c in candidates],  # jsonb: key order is moot
    }
    # Typed arrays in binary: the events table is the hottest write of a push.
    inserted = {row[0] for row in execute_binary(conn, _INSERT_EVENTS, params)}
    if len(inserted) == len(candidates):
        return candidates
    _answer_stored(conn, [c for c in candidates if c.event["id"] not in inserted], results)
    return [c for c in candidates if c.event["id"] in inserted]


def _store(
    conn,
    branch: OrgUnit,
    accepted: list[_Candidate],
    now,
    judgement: rules.Judgement | None,
) -> None:
    """Apply the stored events: hold the blocked ones, fold the rest into deals and rollups."""
    events = [c.event for c in accepted]
    if judgement:
        if judgement.blocked:
            # Counted nowhere until approved (stored as counted a moment ago, in this transaction).
            execute_binary(
                conn,
                "UPDATE events SET status = 'pending' WHERE id = ANY(%(ids)b)",
                {"ids": list(judgement.blocked)},
            )
        rules.record_judgement(conn, branch, events, judgement, now)
        events = [e for e in events if e["id"] not in judgement.blocked]
    if events:
        deal_totals = apply_to_projection(conn, branch, events, at=now)
        add_rollups(conn, branch, events, deal_totals)


def apply_to_projection(
    conn, branch: OrgUnit, events: list[dict], *, at: datetime | None = None
) -> dict[tuple, Decimal]:
    """Fold events into their deals' projected state and write the deals back.

    Return what the changed deals add to the rollups (``deal_rollups.change`` summed),
    for ``add_rollups``. With ``at`` (the moment HQ applies them) the changes of
    pipeline state are recorded for as-of reads; a rebuild passes none (the history
    stays as it was).
    """
    by_deal: dict[uuid.UUID, list[dict]] = {}
    for ev in events:
        if "deal" in ev:
            by_deal.setdefault(ev["deal"], []).append(ev)
    if not by_deal:
        return {}
    states = load_deals(conn, list(by_deal))
    tz = ZoneInfo(branch.timezone)
    before = {deal_id: pipeline_state(s, tz) for deal_id, s in states.items()}
    counted = {deal_id: deal_rollups.contributions(s, tz) for deal_id, s in states.items()}
    for deal_id, deal_events in by_deal.items():
        state = states.setdefault(deal_id, projection.new_deal(deal_id, branch.id))
        for ev in deal_events:
            projection.apply_event(state, ev)
    if write_deals(conn, list(states.values()), tz) != len(states):
        raise PushConflict("a deal id was claimed by a concurrent push of another branch")
    if at is not None:
        record_changes(conn, before, states, at, tz)
    totals: dict[tuple, Decimal] = {}
    for deal_id, state in states.items():
        for key, value in deal_rollups.change(
            counted.get(deal_id), deal_rollups.contributions(state, tz)
        ).items():
            totals[key] = totals.get(key, Decimal(0)) + value
    return totals


def add_rollups(
    conn, branch: OrgUnit, events: list[dict], deal_totals: dict[tuple, Decimal] | None = None
) -> None:
    """Add the events' increments (and the deals' changes) to the branch's daily rollups."""
    totals: dict[tuple, Decimal] = dict(deal_totals or {})
    count_events(branch, events, totals)
    upsert_rollups(conn, branch, totals)


def count_events(branch: OrgUnit, events: list[dict], totals: dict[tuple, Decimal]) -> None:
    """Add the events' increments to ``{(rep_id, local day, metric): value}``."""
    tz = ZoneInfo(branch.timezone)
    for ev in events:
        rollups.add_into(totals, (ev["rep_id"], ev["occurred_at"].astimezone(tz).date()), ev)


def upsert_rollups(conn, branch: OrgUnit, totals: dict[tuple, Decimal]) -> None:
    """Add ``{(rep_id, day, metric): value}`` to a branch's rollups, at every level.

    The daily and weekly rows of the branch's reps, and of each unit on the branch row's
    path (itself, its region, HQ), are summed here and written by one statement. Rows go
    in key order, so two transactions adding to the same rows (pushes of branches of one
    region, a push and an approval) lock them in the same order and never deadlock. The
    unit weeks are the main statement, which PostgreSQL runs before the WITH parts: the
    stripe compaction (``services.compaction``) takes a unit's weeks before its days too.
    """
    if not totals:
        return
    b = branch.id
    daily: list[dict] = []
    weekly: dict[tuple, Decimal] = defaultdict(Decimal)
    by_day: dict[tuple, Decimal] = defaultdict(Decimal)  # summed over the reps: unit rows
    for (rep, day, metric), value in totals.items():
        daily.append({"branch_id": b, "day": day, "rep_id": rep, "metric": metric, "value": value})
        by_day[(day, metric)] += value
        if day != CURRENT_DAY:
            weekly[(week_of(day), rep, metric)] += value
    by_week: dict[tuple, Decimal] = defaultdict(Decimal)
    for (day, metric), value in by_day.items():
        if day != CURRENT_DAY:
            by_week[(week_of(day), metric)] += value
    params = {
        "daily": to_json(daily),
        "weekly": to_json(
            [
                {"branch_id": b, "week": week, "rep_id": rep, "metric": metric, "value": value}
                for (week, rep, metric), value in weekly.items()
            ]
        ),
        # Each unit on the path adds the same sums.
        "units": to_json(
            [
                {"day": day, "metric": metric, "value": value}
                for (day, metric), value in by_day.items()
            ]
        ),
        "unit_weeks": to_json(
            [
                {"week": week, "metric": metric, "value": value}
                for (week, metric), value in by_week.items()
            ]
        ),
        "unit_ids": branch.path_ids,
        "stripe": b % STRIPES,
    }
    execute_plain(conn, _UPSERT_ROLLUPS, params)
    if any(value < 0 for value in totals.values()):
        # A deal that left a stage or a day: drop its rows that are now zero, so the
        # rollups hold the same rows as a rebuild.
        execute_plain(conn, _DROP_ZEROS, {"rows": params["daily"]})


# Rows a negative change left at zero, daily and weekly (by the days it changed).
_DROP_ZEROS = (
    "WITH r AS (SELECT * FROM json_populate_recordset(NULL::daily_rollups, %(rows)s) "
    "WHERE value < 0), d AS (DELETE FROM daily_rollups d USING r "
    "WHERE d.branch_id = r.branch_id AND d.day = r.day AND d.rep_id = r.rep_id "
    "AND d.metric = r.metric AND d.value = 0) "
    "DELETE FROM weekly_rollups w USING r WHERE w.branch_id = r.branch_id "
    f"AND w.week = {WEEK_OF.format('r.day')} AND w.rep_id = r.rep_id "
    "AND w.metric = r.metric AND w.value = 0"
)
_UPSERT_ROLLUPS = (
    "WITH d AS (INSERT INTO daily_rollups "
    "SELECT * FROM json_populate_recordset(NULL::daily_rollups, %(daily)s) ORDER BY 1, 2, 3, 4 "
    "ON CONFLICT (branch_id, day, rep_id, metric) "
    "DO UPDATE SET value = daily_rollups.value + EXCLUDED.value), "
    "w AS (INSERT INTO weekly_rollups "
    "SELECT * FROM json_populate_recordset(NULL::weekly_rollups, %(weekly)s) ORDER BY 1, 2, 3, 4 "
    "ON CONFLICT (branch_id, week, rep_id, metric) "
    "DO UPDATE SET value = weekly_rollups.value + EXCLUDED.value), "
    "u AS (INSERT INTO unit_rollups (unit_id, day, metric, stripe, value) "
    "SELECT u, r.day, r.metric, %(stripe)s, r.value "
    "FROM unnest(CAST(%(unit_ids)s AS integer[])) u "
    "CROSS JOIN json_populate_recordset(NULL::unit_rollups, %(units)s) r ORDER BY 1, 2, 3 "
    "ON CONFLICT (unit_id, day, metric, stripe) "
    "DO UPDATE SET value = unit_rollups.value + EXCLUDED.value) "
    "INSERT INTO weekly_unit_rollups (unit_id, week, metric, stripe, value) "
    "SELECT u, r.week, r.metric, %(stripe)s, r.value "
    "FROM unnest(CAST(%(unit_ids)s AS integer[])) u "
    "CROSS JOIN json_populate_recordset(NULL::weekly_unit_rollups, %(unit_weeks)s) r "
    "ORDER BY 1, 2, 3 "
    "ON CONFLICT (unit_id, week, metric, stripe) "
    "DO UPDATE SET value = weekly_unit_rollups.value + EXCLUDED.value"
)


def _arrived_seqs(raw_events: list) -> list[int]:
    """Return the seq of every event that arrived, rejected ones included.

    A gap means an event never reached HQ; a rejected event did, and waits at
    the branch for a person to fix it.
    """
    return [
        raw["seq"]
        for raw in raw_events
        if isinstance(raw, dict)
        and type(raw.get("seq")) is int
        and 1 <= raw["seq"] <= protocol.MAX_SEQ
    ]


def _track_stream(conn, branch, agent_id, agent_version, seqs, accepted, now) -> None:
    """Record the push, on its stream and in the branch's hourly count, and any seq gaps."""
    keys = {"b": branch.id, "a": agent_id}
    ((max_seq, stored_gaps),) = execute_plain(
        conn, _OPEN_STREAM, {**keys, "v": agent_version, "now": now}
    )
    gaps = [tuple(g) for g in stored_gaps or ()]
    new_max, new_gaps = seqgaps.update_gaps(max_seq, gaps, seqs)
    if new_gaps != sorted(gaps):
        execute_plain(conn, _FORGET_GAPS, keys)
        for first, last in new_gaps:
            execute_plain(conn, _ADD_GAP, {**keys, "f": first, "l": last, "now": now})
    # In the push's transaction: a push rolled back is not counted (its failure is, apart).
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    execute_plain(conn, _COUNT_PUSH, {**keys, "m": new_max, "n": accepted, "now": now, "h": hour})


# The stream's row (made on its first push) with its known gaps, in one round trip.
_OPEN_STREAM = (
    "INSERT INTO agent_streams AS s (branch_id, agent_id, agent_version, max_seq, "
    "events_accepted, pushes, last_push_at) VALUES (%(b)s, %(a)s, %(v)s, 0, 0, 0, %(now)s) "
    "ON CONFLICT (branch_id, agent_id) DO UPDATE SET agent_version = EXCLUDED.agent_version "
    "RETURNING max_seq, (SELECT array_agg(ARRAY[g.first_seq, g.last_seq]) FROM seq_gaps g "
    "WHERE g.branch_id = %(b)s AND g.agent_id = %(a)s) AS gaps"
)
_FORGET_GAPS = "DELETE FROM seq_gaps WHERE branch_id = %(b)s AND agent_id = %(a)s"
_ADD_GAP = (
    "INSERT INTO seq_gaps (branch_id, agent_id, first_seq, last_seq, detected_at) "
    "VALUES (%(b)s, %(a)s, %(f)s, %(l)s, %(now)s)"
)
_COUNT_PUSH = (
    "WITH s AS (UPDATE agent_streams SET max_seq = %(m)s, "
    "events_accepted = events_accepted + %(n)s, pushes = pushes + 1, last_push_at = %(now)s "
    "WHERE branch_id = %(b)s AND agent_id = %(a)s) "
    "INSERT INTO push_counts (branch_id, hour, pushes) VALUES (%(b)s, %(h)s, 1) "
    "ON CONFLICT (branch_id, hour) DO UPDATE SET pushes = push_counts.pushes + 1"
)


def record_push_failure(
    branch_id: int,
    agent_id: str,
    http_status: int,
    code: str,
    events: int | None,
    *,
    now: datetime | None = None,
) -> None:
    """Log a failed push and count it on its agent's stream, then commit.

    The caller has ended the push's own transaction first (rolled back on an
    error, committed when every event was rejected), so this one holds only
    the failure.
    """
    now = now or datetime.now(UTC)
    params = {"b": branch_id, "a": agent_id, "s": http_status, "c": code, "n": events, "at": now}
    conn = db.session.connection()
    conn.execute(
        text(
            "INSERT INTO push_failures (branch_id, agent_id, at, http_status, code, events) "
            "VALUES (:b, :a, :at, :s, :c, :n)"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO agent_streams AS s (branch_id, agent_id, agent_version, max_seq, "
            "events_accepted, pushes, failed_pushes, last_failure_at, last_failure_code) "
            "VALUES (:b, :a, '', 0, 0, 0, 1, :at, :c) ON CONFLICT (branch_id, agent_id) "
            "DO UPDATE SET failed_pushes = s.failed_pushes + 1, "
            "last_failure_at = EXCLUDED.last_failure_at, "
            "last_failure_code = EXCLUDED.last_failure_code"
        ),
        params,
    )
    db.session.commit()
