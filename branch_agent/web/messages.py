"""Say the schemas' and HQ's messages in the page language.

What the event schemas (``shared.events``, with marshmallow's field and validator
messages), the recorder and HQ's answers say is English: HQ's API speaks it. The
staff page shows each such message in the page language: a message is matched
whole against the English texts below, the values in it (a length, the choices)
carried over; a message not listed is shown as it came.
"""

from __future__ import annotations

import re
from functools import lru_cache

from flask_babel import gettext


def N_(message: str) -> str:
    """Mark ``message`` for the catalog; it is translated when shown."""
    return message


# marshmallow's own messages for the fields and validators the event schemas use.
FIELD_MESSAGES = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid input type."),
    N_("Invalid type."),
    N_("Unknown field."),
    N_("Not a valid UUID."),
    N_("Not a valid boolean."),
    N_("Not a valid date."),
    N_("Not a valid datetime."),
    N_("Not a valid aware datetime."),
    N_("Not a valid integer."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid number."),
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Number too large."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("String does not match expected pattern."),
    N_("Length must be between %(min)s and %(max)s."),
    N_("Length must be %(equal)s."),
    N_("Longer than maximum length %(max)s."),
    N_("Shorter than minimum length %(min)s."),
    N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than or equal to %(min)s."),
    N_("Must be less than or equal to %(max)s."),
    N_("Must be one of: %(choices)s."),
)

# The event rules of shared.events and shared.protocol, HQ's ingest and the recorder.
RULE_MESSAGES = (
    N_("ISO 4217 code, e.g. CNY"),
    N_("name at least one changed field"),
    N_("UTC offset must be between -12:00 and +14:00"),
    N_("must be between %(first)s and %(last)s (UTC)"),
    N_("required for %(type)s events"),
    N_("must not contain the NUL character (U+0000)"),
    N_("an event must be a JSON object"),
    N_("unknown stage; one of %(stages)s"),
    N_("later than HQ's clock allows"),
    N_("not a rep of this branch"),
    N_("is in the future"),
)

# Why HQ refused an event (shared.protocol.REJECTION_MESSAGES).
REJECTION_MESSAGES = (
    N_("the event does not match its schema"),
    N_("an event with this id but a different body was already received"),
    N_("occurred_at is in the future"),
    N_("no rep with this code"),
    N_("the rep belongs to another branch"),
    N_("the deal belongs to another branch"),
)

MESSAGES = FIELD_MESSAGES + RULE_MESSAGES + REJECTION_MESSAGES
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _pattern(message: str) -> re.Pattern:
    """Return a pattern that matches ``message`` with any text in its placeholders."""
    parts = _PLACEHOLDER.split(message)  # text, name, text, name, …, text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


_PATTERNS = tuple((_pattern(m), m) for m in MESSAGES)


@lru_cache(maxsize=4096)
def _msgid_of(message: str) -> tuple[str, tuple] | None:
    for pattern, msgid in _PATTERNS:
        match = pattern.fullmatch(message)
        if match:
            return msgid, tuple(match.groupdict().items())
    return None


def say(message: str) -> str:
    """Return ``message`` in the page language (as it came when it is not one of ours)."""
    if not isinstance(message, str):
        return message
    found = _msgid_of(message)
    if found is None:
        return message
    msgid, values = found
    return gettext(msgid, **dict(values))
