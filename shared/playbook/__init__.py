"""The playbook engine: HQ's rules, checked the same way at the branch desk and at HQ.

Load a playbook with ``load_playbook`` (YAML) or ``Playbook.from_dict`` (the JSON
document HQ stores and agents pull), check an event with ``check_event``, and
run the timer rules (SLA, quota, stall) with the working-time arithmetic in
``calendar`` and ``timers``. Everything here is pure: no IO, no clock.
"""

from __future__ import annotations

from shared.playbook.calendar import Calendar, add_working_time, calendar_for, working_seconds
from shared.playbook.errors import ExpressionError, PlaybookError
from shared.playbook.evaluate import Verdict, check_event, make_verdict
from shared.playbook.expr import compile_expression
from shared.playbook.model import (
    Approval,
    Condition,
    EventRule,
    Playbook,
    Quota,
    RequiredFields,
    RequiresPrior,
    Rule,
    Sla,
    Stall,
    Threshold,
)
from shared.playbook.parse import load_playbook
from shared.playbook.timers import (
    is_stalled,
    period_bounds,
    quota_shortfall,
    sla_status,
    week_bounds,
)
from shared.playbook.versions import version_in_force

__all__ = [
    "Approval",
    "Calendar",
    "Condition",
    "EventRule",
    "ExpressionError",
    "Playbook",
    "PlaybookError",
    "Quota",
    "RequiredFields",
    "RequiresPrior",
    "Rule",
    "Sla",
    "Stall",
    "Threshold",
    "Verdict",
    "add_working_time",
    "calendar_for",
    "check_event",
    "compile_expression",
    "is_stalled",
    "load_playbook",
    "make_verdict",
    "period_bounds",
    "quota_shortfall",
    "sla_status",
    "version_in_force",
    "week_bounds",
    "working_seconds",
]
