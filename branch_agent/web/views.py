"""The home page: today's entries and the state of the sync with HQ."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template

from branch_agent.outbox import Outbox
from branch_agent.web.lookups import Lookups
from branch_agent.web.store import get_branch_tz, get_outbox

bp = Blueprint("home", __name__)

SYNC_KEYS = (
    "hq_url",
    "agent_id",
    "last_push_at",
    "last_error",
    "last_error_at",
    "playbook_version",
    "clock_skew_s",
    "last_pull_at",
)


@bp.get("/")
def index():
    """Show what was recorded today and how the sync with HQ is going."""
    outbox = get_outbox()
    midnight = datetime.now(get_branch_tz()).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight.astimezone(UTC).isoformat(timespec="microseconds")
    return render_template(
        "home.html",
        rows=outbox.list(since=since, limit=500),
        counts=outbox.counts(),
        sync=sync_state(outbox),
        lookups=Lookups.load(outbox),
    )


def sync_state(outbox: Outbox) -> dict:
    """Return the sync state: the stored one, updated by the live loop when it runs here."""
    state = {key: outbox.get_meta(key) for key in SYNC_KEYS}
    live = current_app.config.get("SYNC_STATUS")
    if live is not None:
        state.update(live() or {})
    state["error_is_current"] = bool(state["last_error"]) and (
        not state["last_push_at"] or str(state["last_error_at"] or "") >= str(state["last_push_at"])
    )
    return state
