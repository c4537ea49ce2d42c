"""KPI arithmetic over plain counts: telemarketing rates, velocity, period-over-period deltas."""

from __future__ import annotations

from hq_server.metrics.funnel import ratio


def telemarketing(
    activity: dict[str, float], *, won: int, quotes: float, reps: int, won_amount: float
) -> dict[str, float | None]:
    """Return contact, reachable, presentation, hit and lapse rates, and per-rep results.

    contact = connected / calls; reachable = reached the decision maker / connected;
    presentation = presented / connected; hit = won / quotes issued; lapse = failed
    payments / deals won; revenue and orders per active rep.
    """
    calls, connected = activity.get("calls", 0), activity.get("calls_connected", 0)
    return {
        "contact_rate": ratio(connected, calls),
        "reachable_rate": ratio(activity.get("calls_decision_maker", 0), connected),
        "presentation_rate": ratio(activity.get("calls_presented", 0), connected),
        "hit_rate": ratio(won, quotes),
        "lapse_rate": ratio(activity.get("payments_failed", 0), activity.get("deals_won", 0)),
        "revenue_per_rep": ratio(won_amount, reps),
        "orders_per_rep": ratio(won, reps),
        "dm_visit_rate": ratio(activity.get("visits_decision_maker", 0), activity.get("visits", 0)),
        "quotes_per_dm_visit": ratio(quotes, activity.get("visits_decision_maker", 0)),
    }


def velocity(
    open_qualified: int, win_rate: float | None, avg_won: float | None, avg_cycle_days: float | None
) -> float | None:
    """Return sales velocity in revenue per day: open × win rate × average won / cycle days."""
    if not win_rate or not avg_won or not avg_cycle_days:
        return None
    return open_qualified * win_rate * avg_won / avg_cycle_days


def delta(current: float | None, previous: float | None) -> dict[str, float | None]:
    """Return the change against the previous period, absolute and relative."""
    if current is None or previous is None:
        return {"previous": previous, "change": None, "change_pct": None}
    return {
        "previous": previous,
        "change": current - previous,
        "change_pct": ratio(current - previous, abs(previous)),
    }
