"""Small builders for playbook tests: events and playbook texts."""

from __future__ import annotations

import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PLAYBOOK = ROOT / "config" / "playbook.default.yaml"

HEAD = """\
version: 3
name: Test playbook
stages:
  - {name: lead, order: 1, probability: 0.1, forecast_category: pipeline}
  - {name: quote, order: 2, probability: 0.6, forecast_category: best_case}
  - {name: won, order: 3, probability: 1.0, forecast_category: closed, won: true}
  - {name: lost, order: 0, probability: 0.0, forecast_category: omitted, lost: true}
"""
MESSAGE = '    message: {en: "broken", zh: "违规"}\n'
THRESHOLD = (
    "  - id: big-discount\n"
    "    kind: threshold\n"
    "    applies_to: [quote.issued]\n"
    '    condition: "data.discount_pct > 15"\n' + MESSAGE
)


def playbook_text(rules: str = "", *, head: str = HEAD, extra: str = "") -> str:
    """Return a playbook: the test stage table, ``extra`` top-level YAML, then ``rules``."""
    return head + extra + ("rules:\n" + rules if rules else "")


def line_of(text: str, snippet: str) -> int:
    """Return the 1-based line of the first line holding ``snippet``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if snippet in line:
            return number
    raise AssertionError(f"{snippet!r} is not in the text")


def event(
    type_: str,
    data: dict | None = None,
    *,
    at: str = "2026-11-23T10:00:00+08:00",
    deal: str | None = "deal-1",
    **extra: object,
) -> dict:
    """Return a wire event of ``type_`` on ``deal``."""
    out = {
        "id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": at,
        "rep": "SH01-007",
        "data": data or {},
        **extra,
    }
    if deal is not None:
        out["deal"] = deal
    return out


def history(*events: dict):
    """Return a ``priors`` callable over ``events`` that records each call."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def priors(deal_id: str, types: tuple[str, ...]) -> list[dict]:
        calls.append((deal_id, types))
        return [e for e in events if str(e.get("deal")) == deal_id and e["type"] in types]

    priors.calls = calls
    return priors
