"""What every template can use: the branch, labels, times in the branch's zone."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask_babel import format_timedelta

from branch_agent.web.csrf import csrf_token
from branch_agent.web.i18n import LANGUAGES, STATE_LABELS, TYPE_LABELS, html_lang, other_language
from branch_agent.web.messages import say
from branch_agent.web.store import get_branch_tz, get_outbox


def register(app: Flask) -> None:
    """Add the filters and the shared context to ``app``."""
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["say"] = say
    app.context_processor(shared_context)


def shared_context() -> dict:
    """Return the values the page header and every form need."""
    outbox = get_outbox()
    return {
        "branch": outbox.get_cache("branch") or {},
        "rejected_count": outbox.counts()["rejected"],
        "csrf_token": csrf_token,
        "languages": LANGUAGES,
        "other_lang": other_language(),
        "html_lang": html_lang(),
        "type_labels": TYPE_LABELS,
        "state_labels": STATE_LABELS,
    }


def _moment(value: str | datetime | None) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value or ""))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: str | datetime | None, short: bool = False) -> str:
    """Show ISO time text in the branch's zone; ``short`` drops today's date."""
    moment = _moment(value)
    if moment is None:
        return str(value or "")
    local = moment.astimezone(get_branch_tz())
    if short and local.date() == datetime.now(local.tzinfo).date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def ago(value: str | datetime | None) -> str:
    """Say how long ago ISO time text was, in the page language."""
    moment = _moment(value)
    if moment is None:
        return ""
    return format_timedelta(moment - datetime.now(UTC), add_direction=True)
