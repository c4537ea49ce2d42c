"""Page language (Chinese or English), the switch, and numbers, money and dates per locale."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from babel import support
from flask import Blueprint, Flask, abort, redirect, request, session
from flask_babel import (
    Babel,
    Domain,
    format_currency,
    format_date,
    format_datetime,
    format_decimal,
    format_percent,
    format_timedelta,
    get_locale,
)

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# English is the source language; each entry names the language in itself.
LANGUAGES = {"en": "English", "zh_CN": "中文"}
DASH = "—"

bp = Blueprint("i18n", __name__)


class CatalogDomain(Domain):
    """Load the console's catalogs, where Chinese lives under ``zh_CN``.

    Babel names that locale ``zh_Hans_CN``; gettext would look for a folder of
    that name, so the language_territory name is tried as well.
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


def init_babel(app: Flask, timezone: str) -> None:
    """Bind Flask-Babel to ``app`` with the console's catalogs and filters."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", timezone)
    babel = Babel(app, locale_selector=select_locale)
    babel.domain_instance = CatalogDomain(TRANSLATIONS)
    app.jinja_env.filters.update(
        num=num, pct=pct, money=money, day=day, moment=moment, ago=ago, signed_pct=signed_pct
    )


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


def text_in(message: dict | None) -> str:
    """Pick the page language's text from an ``{"en": …, "zh": …}`` message."""
    if not message:
        return ""
    lang = "zh" if current_language() == "zh_CN" else "en"
    return message.get(lang) or message.get("en") or ""


@bp.get("/lang/<code>")
def switch_language(code: str):
    """Remember the chosen language and go back to the page it was chosen on."""
    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    target = request.args.get("next", "/console/")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = "/console/"
    return redirect(target)


def _number(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def num(value, digits: int = 0) -> str:
    """Format a number in the page locale (grouping, decimals); a dash for none."""
    number = _number(value)
    if number is None:
        return DASH
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(number, format=pattern)


def pct(value, digits: int = 1) -> str:
    """Format a ratio (0.27) as a percentage in the page locale."""
    number = _number(value)
    if number is None:
        return DASH
    return format_percent(number, format="#,##0" + ("." + "0" * digits if digits else "") + "%")


def signed_pct(value) -> str:
    """Format a relative change with its sign (+12.0 %, −3.1 %)."""
    number = _number(value)
    if number is None:
        return DASH
    text = pct(abs(number))
    return ("+" if number > 0 else "\u2212" if number < 0 else "") + text


def money(value, currency: str | None = None) -> str:
    """Format an amount in a currency, in the page locale."""
    number = _number(value)
    if number is None:
        return DASH
    if not currency:
        return num(number, 2)
    return format_currency(number, currency)


def _as_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        moment_ = value
    elif isinstance(value, str) and value:
        try:
            moment_ = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment_ if moment_.tzinfo else moment_.replace(tzinfo=UTC)


def day(value) -> str:
    """Format a date in the page locale."""
    if isinstance(value, str) and value:
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if not isinstance(value, date):
        return DASH
    return format_date(value, "medium")


def moment(value) -> str:
    """Format a moment in the page locale and HQ's time zone."""
    when = _as_datetime(value)
    return DASH if when is None else format_datetime(when, "short")


def ago(value) -> str:
    """Say how long ago a moment was, in the page language."""
    when = _as_datetime(value)
    if when is None:
        return DASH
    return format_timedelta(when - datetime.now(UTC), add_direction=True)
