"""Build events from what staff enter, check them with HQ's own schemas, and queue them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from uuid6 import uuid7

from branch_agent.outbox import Outbox
from shared.events import load_event

_PLAYBOOKS: dict[int, object] = {}


class Recorded(NamedTuple):
    """A queued entry: its seq, the event, and what the playbook says about it."""

    seq: int
    event: dict
    verdicts: list[dict]


class RecordError(ValueError):
    """The entry is not a valid event; ``errors`` names each bad field."""

    def __init__(self, errors: dict):
        super().__init__(f"not recorded: {errors}")
        self.errors = errors


def branch_timezone(outbox: Outbox):
    """Return the branch's time zone from the last pull (else the machine's)."""
    branch = outbox.get_cache("branch") or {}
    try:
        return ZoneInfo(branch["timezone"])
    except (KeyError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def build_event(
    outbox: Outbox,
    type_: str,
    rep: str,
    data: dict,
    *,
    deal: str | None = None,
    customer: str | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict:
    """Return a checked event (without seq); raise ``RecordError`` if HQ would refuse it."""
    moment = occurred_at or datetime.now(branch_timezone(outbox))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=branch_timezone(outbox))
    event = {
        "id": event_id or str(uuid7()),
        "type": type_,
        "occurred_at": moment.isoformat(),
        "rep": rep,
        "data": {k: v for k, v in data.items() if v is not None and v != ""},
    }
    if deal:
        event["deal"] = deal
    elif type_ == "deal.opened":
        event["deal"] = str(uuid7())  # a new deal gets its id at the desk
    if customer:
        event["customer"] = customer
    version = outbox.get_meta("playbook_version")
    if version is not None:
        event["playbook_version"] = int(version)
    _check(outbox, event)
    return event


def _check(outbox: Outbox, event: dict) -> None:
    _, errors = load_event({**event, "seq": 1})
    errors = dict(errors or {})
    reps = {r["code"] for r in outbox.get_cache("reps", [])}
    if reps and event["rep"] not in reps:
        errors.setdefault("rep", []).append("not a rep of this branch")
    to_rep = event["data"].get("to_rep")
    if reps and to_rep and to_rep not in reps:
        errors.setdefault("data", {}).setdefault("to_rep", []).append("not a rep of this branch")
    if _in_future(event["occurred_at"]):
        errors.setdefault("occurred_at", []).append("is in the future")
    if errors:
        raise RecordError(errors)


def _in_future(stamp: str) -> bool:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return False  # the schema names it
    return moment.tzinfo is not None and moment > datetime.now(moment.tzinfo) + timedelta(minutes=5)


def local_verdicts(outbox: Outbox, event: dict) -> list[dict]:
    """Check ``event`` with the playbook HQ last sent (same engine, same rules as HQ)."""
    from shared.playbook import Playbook, check_event

    document = outbox.get_cache("playbook")
    if not document:
        return []
    version = document.get("version")
    if version not in _PLAYBOOKS:
        _PLAYBOOKS[version] = Playbook.from_dict(document)
    verdicts = check_event(_PLAYBOOKS[version], event, outbox.deal_events)
    return [v.as_dict() for v in verdicts]


def record(
    outbox: Outbox, type_: str, rep: str, data: dict, *, source: str = "desk", **kwargs
) -> Recorded:
    """Check and queue one event; nothing is queued if it is invalid.

    A playbook violation does not stop the entry — nothing typed is lost — but
    its verdicts come back at once (and stay with the entry) so staff see them.
    """
    event = build_event(outbox, type_, rep, data, **kwargs)
    verdicts = local_verdicts(outbox, event)
    seq, _ = outbox.add(event, source=source, verdicts=verdicts)
    return Recorded(seq, {**event, "seq": seq}, verdicts)
