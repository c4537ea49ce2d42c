"""Apache ECharts options built from the numbers a page shows (the tables show them too).

Options are plain dicts rendered as JSON; ``_fmt`` on a series (``number``,
``percent`` or ``money:CNY``) tells the page script how to format its values
in the reader's locale. Labels arrive already translated.
"""

from __future__ import annotations

from hq_server.metrics.lagging import RateFlag, funnel_curve, rate_flags

PALETTE = ["#1f6feb", "#e16f24", "#1a7f37", "#8250df", "#bf3989", "#0a7d8c", "#9a6700"]
MIN_N = 20  # the lagging scan's minimum n: smaller units are plotted, never flagged
_GRID = {"left": 64, "right": 24, "top": 40, "bottom": 48, "containLabel": True}


def _axis_value(fmt: str) -> dict:
    axis = {"type": "value", "_fmt": fmt}
    if fmt.startswith("money:"):
        # Money labels show whole units: ticks at 0.2, 0.4, … would read ¥0, ¥0, ¥1, ¥1.
        axis["minInterval"] = 1
    return axis


def bars(categories: list[str], series: list[tuple[str, list, str]]) -> dict:
    """Return a bar chart: one bar group per category, one bar per series."""
    return {
        "color": PALETTE,
        "grid": _GRID,
        "legend": {"top": 0},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "category", "data": categories},
        "yAxis": _axis_value(series[0][2] if series else "number"),
        "series": [
            {"name": name, "type": "bar", "data": values, "_fmt": fmt}
            for name, values, fmt in series
        ],
    }


def lines(x: list[str], series: list[tuple[str, list]], fmt: str = "number") -> dict:
    """Return a line chart of several series over the same x values."""
    return {
        "color": PALETTE,
        "grid": _GRID,
        "legend": {"top": 0, "type": "scroll"},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": x, "boundaryGap": False},
        "yAxis": _axis_value(fmt),
        "series": [
            {"name": name, "type": "line", "data": values, "smooth": False, "_fmt": fmt}
            for name, values in series
        ],
    }


def funnel(stages: list[tuple[str, int]]) -> dict:
    """Return a funnel of how many deals reached each stage."""
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "item"},
        "series": [
            {
                "type": "funnel",
                "sort": "none",
                "top": 10,
                "bottom": 10,
                "minSize": "8%",
                "label": {"show": True, "position": "inside", "formatter": "{b}: {c}"},
                "data": [{"name": name, "value": value} for name, value in stages],
                "_fmt": "number",
            }
        ],
    }


def funnel_plot_points(units: list[tuple[str, int, int]]) -> list[RateFlag]:
    """Judge each unit's rate (successes, trials) against its peers, as the scan does."""
    return rate_flags(units, min_n=MIN_N)


def funnel_plot(flags: list[RateFlag], names: dict[str, str]) -> dict:
    """Return a funnel plot: each unit's rate over its n, with the 2σ and 3σ limits."""
    known = [f for f in flags if f.n > 0 and f.rate is not None]
    p0 = next((f.p0 for f in known if f.p0 is not None), None)
    phi = next((f.phi for f in known if f.phi is not None), None)
    top = max([f.n for f in known] + [MIN_N]) * 1.2
    steps = [max(1, int(top * i / 60)) for i in range(1, 61)]
    curve = funnel_curve(p0, phi, sorted(set(steps))) if p0 is not None else []

    def limit(key: str, name: str, dashed: bool) -> dict:
        return {
            "name": name,
            "type": "line",
            "showSymbol": False,
            "lineStyle": {"type": "dashed" if dashed else "solid", "width": 1},
            "data": [[c.n, getattr(c, key)] for c in curve],
            "_fmt": "percent",
        }

    series = [
        {
            "name": names["units"],
            "type": "scatter",
            "symbolSize": 12,
            "data": [
                {"name": f.code, "value": [f.n, f.rate], "itemStyle": _status_style(f.status)}
                for f in known
            ],
            "label": {"show": True, "formatter": "{b}", "position": "right"},
            "_fmt": "percent",
        }
    ]
    if p0 is not None:
        series += [
            {
                "name": names["peers"],
                "type": "line",
                "showSymbol": False,
                "data": [[1, p0], [top, p0]],
                "_fmt": "percent",
            },
            limit("lower_warn", names["warn"], True),
            limit("upper_warn", names["warn"], True),
            limit("lower_alert", names["alert"], False),
            limit("upper_alert", names["alert"], False),
        ]
    return {
        "color": ["#1f6feb", "#616e7c", "#9a6700", "#9a6700", "#cf222e", "#cf222e"],
        "grid": _GRID,
        "legend": {"top": 0},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "name": names["n"], "min": 0, "max": round(top)},
        "yAxis": {"type": "value", "name": names["rate"], "min": 0, "max": 1, "_fmt": "percent"},
        "series": series,
    }


def _status_style(status: str) -> dict:
    colour = {"alert": "#cf222e", "warn": "#9a6700", "above": "#1a7f37"}.get(status, "#1f6feb")
    return {"color": colour}


def waterfall(steps: list[tuple[str, float]], currency: str, names: dict[str, str]) -> dict:
    """Return a bridge from a start total to an end total: ups and downs between them.

    ``steps`` is ``[(label, signed amount)]`` where the first and last are totals.
    """
    base, up, down, total = [], [], [], []
    level = 0.0
    for i, (_, amount) in enumerate(steps):
        if i == 0 or i == len(steps) - 1:
            base.append(0)
            total.append(amount)
            up.append(None)
            down.append(None)
            level = amount
            continue
        total.append(None)
        if amount >= 0:
            base.append(level)
            up.append(amount)
            down.append(None)
            level += amount
        else:
            level += amount
            base.append(level)
            up.append(None)
            down.append(-amount)
    fmt = f"money:{currency}"
    stack = {"type": "bar", "stack": "bridge", "_fmt": fmt}
    return {
        "grid": _GRID,
        "legend": {"top": 0, "data": [names["total"], names["up"], names["down"]]},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "category", "data": [label for label, _ in steps]},
        "yAxis": _axis_value(fmt),
        "series": [
            {
                **stack,
                "name": "base",
                "data": base,
                "itemStyle": {"color": "transparent"},
                "tooltip": {"show": False},
                "silent": True,
            },
            {**stack, "name": names["total"], "data": total, "itemStyle": {"color": "#1f6feb"}},
            {**stack, "name": names["up"], "data": up, "itemStyle": {"color": "#1a7f37"}},
            {**stack, "name": names["down"], "data": down, "itemStyle": {"color": "#cf222e"}},
        ],
    }
