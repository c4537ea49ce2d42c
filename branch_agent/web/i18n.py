"""Choose the page language and name event types, states and stages in it."""

from __future__ import annotations

from pathlib import Path

from babel import support
from flask import Blueprint, abort, redirect, request, session
from flask_babel import Domain, get_locale
from flask_babel import lazy_gettext as _l

# English is the source language; each entry names the language in itself.
LANGUAGES = {"en": "English", "zh_CN": "中文"}

TYPE_LABELS = {
    "visit.logged": _l("Visit"),
    "call.logged": _l("Call"),
    "quote.issued": _l("Quote"),
    "deal.opened": _l("New deal"),
    "deal.stage_changed": _l("Stage change"),
    "deal.updated": _l("Deal update"),
    "deal.won": _l("Deal won"),
    "deal.lost": _l("Deal lost"),
    "lead.created": _l("New lead"),
    "lead.assigned": _l("Lead assigned"),
    "lead.recycled": _l("Lead returned"),
    "payment.failed": _l("Payment failed"),
}

STATE_LABELS = {
    "pending": _l("Waiting to send"),
    "sending": _l("Sending"),
    "synced": _l("At HQ"),
    "rejected": _l("Needs fixing"),
    "discarded": _l("Discarded"),
}

# HQ names stages with codes; the default ones get a name in the page language.
STAGE_LABELS = {
    "lead": _l("Lead"),
    "visit": _l("Visit"),
    "quote": _l("Quote"),
    "won": _l("Won"),
    "lost": _l("Lost"),
}

bp = Blueprint("i18n", __name__)


class CatalogDomain(Domain):
    """Load the catalogs of one directory, where Chinese lives under ``zh_CN``.

    Babel names that locale ``zh_Hans_CN``, which gettext would look for in a
    folder of that name; so the language_territory name is tried as well.
    """

    def __init__(self, directory: Path):
        super().__init__(translation_directories=[str(directory)])

    def get_translations(self) -> support.NullTranslations:
        """Return the catalog of the request's language (empty for English)."""
        locale = get_locale()
        if locale is None:
            return support.NullTranslations()
        key = str(locale)
        if key not in self.cache:
            names = [key, f"{locale.language}_{locale.territory}"] if locale.territory else [key]
            self.cache[key] = support.Translations.load(
                self.translation_directories[0], names, self.domain[0]
            )
        return self.cache[key]


def select_locale() -> str:
    """Return the language chosen by the switch, else the browser's best match."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES), default="en")


def current_language() -> str:
    """Return the code (a key of ``LANGUAGES``) of the request's language."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def other_language() -> str:
    """Return the code of the language the switch link offers."""
    return "en" if current_language() == "zh_CN" else "zh_CN"


def html_lang() -> str:
    """Return the page language as a BCP 47 tag for ``<html lang>``."""
    return current_language().replace("_", "-")


@bp.get("/lang/<code>")
def switch(code: str):
    """Remember the chosen language and go back to the page it was chosen on."""
    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    session.permanent = True
    target = request.args.get("next", "/")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = "/"
    return redirect(target)
