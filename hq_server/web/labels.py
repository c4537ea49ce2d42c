"""Names of codes (stages, roles, metrics, statuses, event types) in the page language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ROLE_LABELS = {
    "staff": _l("Branch staff"),
    "branch_manager": _l("Branch manager"),
    "region_manager": _l("Regional manager"),
    "hq_manager": _l("HQ manager"),
    "finance": _l("Finance"),
    "admin": _l("Administrator"),
}

STAGE_LABELS = {
    "lead": _l("Lead"),
    "visit": _l("Visit"),
    "quote": _l("Quote"),
    "won": _l("Won"),
    "lost": _l("Lost"),
}

CATEGORY_LABELS = {
    "pipeline": _l("Pipeline"),
    "best_case": _l("Best case"),
    "commit": _l("Commit"),
    "closed": _l("Closed"),
    "omitted": _l("Omitted"),
}

STATUS_LABELS = {
    "open": _l("Open"),
    "acknowledged": _l("Acknowledged"),
    "resolved": _l("Resolved"),
    "pending": _l("Pending"),
    "approved": _l("Approved"),
    "refused": _l("Refused"),
    "counted": _l("Counted"),
    "won": _l("Won"),
    "lost": _l("Lost"),
}

SEVERITY_LABELS = {"warn": _l("Warning"), "alert": _l("Alert"), "block": _l("Blocking")}

METRIC_LABELS = {
    "win_rate": _l("Win rate"),
    "quote_to_won": _l("Quote to won"),
    "dm_visit_rate": _l("Decision-maker visit rate"),
    "contact_rate": _l("Contact rate"),
    "visits": _l("Visits"),
    "visits_per_rep": _l("Visits per rep"),
    "last_push": _l("Last push"),
    "seq_gaps": _l("Missing events"),
    "p90_lag_s": _l("Late arrival"),
    "won_amount": _l("Won revenue"),
    "deals_won": _l("Deals won"),
}

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

TERM_LABELS = {
    "start": _l("Start"),
    "new": _l("New"),
    "pulled_in": _l("Pulled in"),
    "increased": _l("Increased"),
    "decreased": _l("Decreased"),
    "pushed_out": _l("Pushed out"),
    "won": _l("Won"),
    "lost": _l("Lost"),
    "end": _l("End"),
}

SLA_LABELS = {"due": _l("Due"), "met": _l("Met"), "failed": _l("Late")}

PLOT_LABELS = {
    "ok": _l("Within limits"),
    "warn": _l("Below the 2σ limit"),
    "alert": _l("Below the 3σ limit"),
    "above": _l("Above the 2σ limit"),
    "insufficient": _l("Too few to judge"),
}


def label(table: dict, code: str | None) -> str:
    """Return the name of ``code`` in ``table``, or the code itself when it has none."""
    if code is None:
        return ""
    found = table.get(code)
    return str(found) if found is not None else code


LABELS = {
    "role": ROLE_LABELS,
    "stage": STAGE_LABELS,
    "category": CATEGORY_LABELS,
    "status": STATUS_LABELS,
    "severity": SEVERITY_LABELS,
    "metric": METRIC_LABELS,
    "type": TYPE_LABELS,
    "term": TERM_LABELS,
    "sla": SLA_LABELS,
    "plot": PLOT_LABELS,
}
