"""What every console template can use: the user, the menu, labels, the language switch."""

from __future__ import annotations

from flask import Blueprint, g, request, url_for
from flask_babel import lazy_gettext as _l

from hq_server.services import notify
from hq_server.services.org import HQ_CODE
from hq_server.web.i18n import LANGUAGES, current_language, text_in
from hq_server.web.labels import LABELS, label

ASSET_VERSION = "1"
LIVE_SECONDS = 5
# Pages whose figures refresh by themselves while they are open.
LIVE_PAGES = {
    "console.units.overview",
    "console.units.region",
    "console.units.branch",
    "console.drill.rep",
    "console.drill.deal",
    "console.finance.page",
    "console.inbox.page",
}


def register(console: Blueprint) -> None:
    """Add the shared template values to every console page."""
    console.context_processor(shared_context)


def _menu() -> list[tuple[str, str, str]]:
    """Return (endpoint, url, label) of the pages the signed-in user may open."""
    user = g.get("user")
    if user is None:
        return []
    scope = g.principal.scope_code
    items = []
    if scope == HQ_CODE:
        items.append(("console.units.overview", url_for("console.units.overview"), _l("Overview")))
    elif user.scope_unit.kind == "region":
        items.append(
            ("console.units.region", url_for("console.units.region", code=scope), _l("My region"))
        )
    else:
        items.append(
            ("console.units.branch", url_for("console.units.branch", code=scope), _l("My branch"))
        )
    if user.role != "staff":
        items.append(("console.finance.page", url_for("console.finance.page"), _l("Finance")))
    items.append(("console.playbook.page", url_for("console.playbook.page"), _l("Playbook")))
    items.append(("console.inbox.page", url_for("console.inbox.page"), _l("Inbox")))
    if user.role == "admin":
        items.append(("console.admin.users", url_for("console.admin.users"), _l("Users")))
    return items


def shared_context() -> dict:
    """Return the values the page header, menu and tables need."""
    lang = current_language()
    other = "en" if lang == "zh_CN" else "zh_CN"
    user = g.get("user")
    return {
        "user": user,
        "menu": _menu(),
        "unread": notify.inbox(user.id, unread_only=True, limit=1)["unread"] if user else 0,
        "languages": LANGUAGES,
        "html_lang": lang.replace("_", "-"),
        "other_lang": other,
        "switch_url": url_for(
            "console.i18n.switch_language", code=other, next=request.full_path.rstrip("?")
        ),
        "label": lambda kind, code: label(LABELS[kind], code),
        "text_in": text_in,
        "asset_version": ASSET_VERSION,
        "refresh": LIVE_SECONDS if user and request.endpoint in LIVE_PAGES else None,
    }
