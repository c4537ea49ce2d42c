"""Check one event against a playbook's event rules and say which it breaks.

The caller supplies the event's earlier events on the same deal: HQ from its
event log, the agent from its outbox. They are fetched once per event, only
when a ``requires_prior`` rule needs them, and may come in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.playbook.model import (
    Approval,
    Playbook,
    RequiredFields,
    RequiresPrior,
    Rule,
    Threshold,
)
from shared.playbook.paths import is_present

Event = Mapping[str, Any]
Priors = Callable[[str, tuple[str, ...]], Sequence[Event]]


@dataclass(frozen=True)
class Verdict:
    """One rule an event breaks, judged by one playbook version."""

    rule_id: str
    kind: str
    severity: str
    version: int
    message: dict[str, str]
    approver: str | None = None
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the verdict as plain JSON data."""
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "severity": self.severity,
            "version": self.version,
            "message": dict(self.message),
            "approver": self.approver,
            "fields": list(self.fields),
        }


def check_event(playbook: Playbook, event: Event, priors: Priors) -> list[Verdict]:
    """Return a verdict for each event rule ``event`` breaks, in playbook order.

    ``event`` has the wire fields (``id, type, occurred_at, rep, deal, customer,
    data``); ``occurred_at`` is an aware ``datetime`` or ISO text. ``priors(deal_id,
    types)`` returns that deal's events of those types, each with at least ``id,
    type, occurred_at, data``.
    """
    rules = playbook.event_rules(event.get("type"))
    if not rules:
        return []
    earlier = _Earlier(playbook, event, priors)
    verdicts = []
    for rule in rules:
        missing = _CHECKS[type(rule)](rule, event, earlier)
        if missing is not None:
            verdicts.append(make_verdict(playbook, rule, event, missing))
    return verdicts


def make_verdict(
    playbook: Playbook, rule: Rule, context: Event, fields: tuple[str, ...] = ()
) -> Verdict:
    """Return the verdict of ``rule`` with its message filled from ``context``.

    For event rules ``context`` is the event; HQ's timer jobs pass an SLA's start
    event, or the facts a quota or stall message names (``QUOTA_FACTS``, ``STALL_FACTS``).
    """
    return Verdict(
        rule_id=rule.id,
        kind=rule.kind,
        severity=rule.severity,
        version=playbook.version,
        message=rule.message.render(context),
        approver=getattr(rule, "approver", None),
        fields=fields,
    )


class _Earlier:
    """The event's earlier events on its deal, fetched on first use."""

    def __init__(self, playbook: Playbook, event: Event, priors: Priors) -> None:
        self.playbook = playbook
        self.event = event
        self.priors = priors
        self.events: list[Event] | None = None

    def of_type(self, event_type: str) -> list[Event]:
        if self.events is None:
            self.events = self._fetch()
        return [e for e in self.events if e.get("type") == event_type]

    def _fetch(self) -> list[Event]:
        deal = self.event.get("deal")
        if deal is None:
            return []
        moment = instant(self.event.get("occurred_at"))
        if moment is None:
            raise ValueError("the event's occurred_at must be a time with a UTC offset")
        own = str(self.event.get("id"))
        found = self.priors(str(deal), self.playbook.prior_types(self.event["type"]))
        return [e for e in found if str(e.get("id")) != own and _before(e, moment)]


def instant(value: Any) -> datetime | None:
    """Return an aware ``datetime`` from a ``datetime`` or ISO text (``None`` if neither)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    return None


def _before(event: Event, moment: datetime) -> bool:
    when = instant(event.get("occurred_at"))
    return when is not None and when < moment


def _applies(rule: RequiresPrior | RequiredFields, event: Event) -> bool:
    return rule.when is None or bool(rule.when.test(event))


def _requires_prior(rule: RequiresPrior, event: Event, earlier: _Earlier) -> tuple | None:
    if not _applies(rule, event):
        return None
    condition = rule.prior_condition
    for prior in earlier.of_type(rule.prior_type):
        if condition is None or condition.test(prior):
            return None
    return ()


def _required_fields(rule: RequiredFields, event: Event, earlier: _Earlier) -> tuple | None:
    if not _applies(rule, event):
        return None
    missing = tuple(
        path
        for path, get in zip(rule.fields, rule.getters, strict=True)
        if not is_present(get(event))
    )
    return missing or None


def _threshold(rule: Threshold, event: Event, earlier: _Earlier) -> tuple | None:
    return () if rule.condition.test(event) else None


_CHECKS: dict[type, Callable[[Any, Event, _Earlier], tuple | None]] = {
    RequiresPrior: _requires_prior,
    RequiredFields: _required_fields,
    Threshold: _threshold,
    Approval: _threshold,
}
