"""Chart options: axes read well whatever the numbers."""

from __future__ import annotations

from hq_server.web import charts


def test_money_axes_tick_in_whole_units_and_counts_may_not():
    money = charts.bars(["a", "b"], [("Amount", [0.0, 0.0], "money:CNY")])
    counts = charts.bars(["a", "b"], [("Deals", [0.4, 0.6], "number")])
    assert money["yAxis"]["minInterval"] == 1
    assert "minInterval" not in counts["yAxis"]
    steps = [("Start", 0.0), ("New", 0.0), ("End", 0.0)]
    names = {"total": "Total", "up": "Increase", "down": "Decrease"}
    assert charts.waterfall(steps, "CNY", names)["yAxis"]["minInterval"] == 1
