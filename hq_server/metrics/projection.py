"""Fold events into a deal's state, the same whatever order they arrive in.

Every field is a last-writer-wins register keyed by ``(occurred_at, event
id)``; first-reached times are minima and counts are sums. All three are
commutative, so incremental ingest (any batching, any arrival order,
duplicates dropped upstream) and a full rebuild give the same state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.stages import STAGES_BY_NAME

# Which stage an event puts the deal in (explicitly) or shows it reached.
_STAGE_SETTERS = {"deal.opened", "lead.created", "deal.stage_changed", "deal.won", "deal.lost"}


def event_texts(occurred_at: datetime, event_id: Any) -> tuple[str, str]:
    """Return an event's version key and its moment as stored in ``reached_at``.

    The key orders events: UTC time, then id. Both texts come from one conversion to UTC
    and one ISO text (once per ingested event).
    """
    utc = occurred_at.astimezone(UTC)
    iso = utc.isoformat(timespec="microseconds")  # 2026-03-01T09:30:00.000000+00:00
    # The key is the strftime form "%Y-%m-%dT%H:%M:%S.%fZ|id", which stored keys were
    # made with; strftime's %Y does not pad years before 1000, isoformat does.
    key = (
        f"{utc:%Y-%m-%dT%H:%M:%S.%f}Z|{event_id}" if utc.year < 1000 else f"{iso[:-6]}Z|{event_id}"
    )
    # The stamp is isoformat()'s own form: no fraction when there is none.
    return key, iso if utc.microsecond else f"{iso[:19]}+00:00"


def new_deal(deal_id: Any, branch_id: int) -> dict:
    """Return the state of a deal no event has touched yet."""
    return {
        "id": deal_id,
        "branch_id": branch_id,
        "rep_id": None,
        "customer": None,
        "name": None,
        "stage": None,
        "status": "open",
        "amount": None,
        "currency": None,
        "expected_close": None,
        "forecast_category": None,
        "loss_reason": None,
        "opened_at": None,
        "closed_at": None,
        "last_activity_at": None,
        "event_count": 0,
        "reached_at": {},
        "versions": {},
    }


def stage_set_by(event: dict) -> str | None:
    """Return the stage an event explicitly moves its deal to, if any."""
    kind, data = event["type"], event["data"]
    if kind == "deal.opened":
        return data.get("stage") or "lead"
    if kind == "lead.created":
        return "lead"
    if kind == "deal.stage_changed":
        return data["to"]
    if kind == "deal.won":
        return "won"
    if kind == "deal.lost":
        return "lost"
    return None


def stage_reached_by(event: dict) -> str | None:
    """Return the furthest funnel stage an event shows its deal reached."""
    kind, data = event["type"], event["data"]
    if kind == "visit.logged":
        return "visit" if data.get("decision_maker_met") else None
    if kind == "quote.issued":
        return "quote"
    stage = stage_set_by(event)
    return None if stage == "lost" else stage


def _write(state: dict, field: str, key: str, **values: Any) -> None:
    """Set ``values`` if this event is the latest writer of ``field``."""
    current = state["versions"].get(field)
    if current is None or key > current:
        state["versions"][field] = key
        state.update(values)


def _min_time(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _max_time(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def apply_event(state: dict, event: dict) -> dict:
    """Fold one loaded event into ``state`` (mutated and returned).

    ``event`` is a loaded event (``shared.events.load_event``) with ``rep_id``
    resolved, and for ``lead.assigned`` ``to_rep_id`` resolved as well.
    """
    at: datetime = event["occurred_at"]
    key, stamp = event_texts(at, event["id"])
    kind, data = event["type"], event["data"]
    state["event_count"] += 1
    state["last_activity_at"] = _max_time(state["last_activity_at"], at)
    if event.get("customer"):
        _write(state, "customer", key, customer=event["customer"])
    if kind in ("deal.opened", "lead.created"):
        state["opened_at"] = _min_time(state["opened_at"], at)
        _write(state, "owner", key, rep_id=event["rep_id"])
    if kind == "lead.assigned":
        _write(state, "owner", key, rep_id=event["to_rep_id"])
    if kind == "deal.opened":
        _write(state, "name", key, name=data["name"])
    if kind in ("deal.opened", "deal.updated", "deal.won"):
        # Separate registers: an update may change the amount and leave the currency.
        if "amount" in data:
            _write(state, "amount", key, amount=Decimal(data["amount"]))
        if data.get("currency"):
            _write(state, "currency", key, currency=data["currency"])
    if "expected_close" in data and kind in ("deal.opened", "deal.updated"):
        _write(state, "expected_close", key, expected_close=data["expected_close"])
    if "forecast_category" in data:
        _write(state, "forecast_category", key, forecast_category=data["forecast_category"])
    if kind == "deal.lost":
        _write(state, "loss_reason", key, loss_reason=data.get("loss_reason"))
    stage = stage_set_by(event)
    if stage is not None:
        closed = STAGES_BY_NAME[stage].is_closed
        status = "won" if stage == "won" else "lost" if stage == "lost" else "open"
        _write(state, "stage", key, stage=stage, status=status, closed_at=at if closed else None)
    _mark_reached(state, stage_reached_by(event), stamp)
    return state


# Per stage reached (None: only that the deal exists), the stages that implies reached.
_REACHED_WITH = {
    stage: tuple(
        name
        for name, info in STAGES_BY_NAME.items()
        if not info.is_lost and info.order <= (STAGES_BY_NAME[stage].order if stage else 1)
    )
    for stage in (None, *STAGES_BY_NAME)
}


def _mark_reached(state: dict, stage: str | None, stamp: str) -> None:
    """Record that the deal reached ``stage`` (and so every earlier one) by ``stamp`` (UTC)."""
    reached = state["reached_at"]
    # Any event on a deal shows it exists, i.e. reached the first stage.
    for name in _REACHED_WITH[stage]:
        if name not in reached or stamp < reached[name]:
            reached[name] = stamp


def local_day(moment: datetime | None, tz) -> Any:
    """Return the calendar date of ``moment`` in time zone ``tz`` (None stays None)."""
    return None if moment is None else moment.astimezone(tz).date()
