"""The same spreadsheet imported twice reaches HQ once; broken rows are named, not queued."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from branch_agent.outbox import Outbox
from tests.e2e.checks import hq_count, verify
from tests.e2e.conftest import branch_agent

PRODUCTS = """product,series,sales_price
GTX Basic,GTX,550
GTX Pro,GTX,4821
MG Special,MG,55
"""

# Line numbers count the header as line 1, as a spreadsheet does.
PIPELINE = """\
opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value
OPP001,SH01 001,GTX Basic,Acme,Won,2025-10-01,2025-11-15,540
OPP002,SH01 002,MG Special,Betatech,Lost,2025-10-03,2025-10-20,
OPP003,SH01 001,GTXPro,Acme,Engaging,2025-10-05,,
OPP101,SH01 001,GTX Basic,Acme,Won,2025-13-40,2025-11-15,540
OPP102,SH01 002,Quantum Widget,Acme,Engaging,2025-10-05,,
OPP004,sh01 002,GTX Basic,Cancity,Won,2025-09-01,2025-10-01,600
OPP103,SH01 001,GTX Pro,Acme,Won,2025-10-05,2025-11-01,
OPP104,HZ01 001,GTX Basic,Acme,Won,2025-10-05,2025-11-01,500
OPP005,SH01 002,MG Special,,Engaging,2025-11-01,,
"""
GOOD_EVENTS = 8  # two for each closed deal, one for each open one
REFUSED = {
    5: ("OPP101", "engage_date: not a date"),
    6: ("OPP102", "product: unknown product 'Quantum Widget'"),
    8: ("OPP103", "close_value: missing for a won deal"),
}


@pytest.fixture
def pipeline_csv(tmp_path) -> Path:
    """A pipeline export for branch SH01 with its products.csv beside it."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    path = folder / "sales_pipeline.csv"
    path.write_text(PIPELINE, encoding="utf-8")
    return path


def import_csv(agent_dir: Path, path: Path, report: Path):
    done = branch_agent(agent_dir, "import", str(path), "--report", str(report))
    assert done.returncode == 0, done.stderr
    with report.open(newline="", encoding="utf-8") as fh:
        rows = {int(r["line"]): r for r in csv.DictReader(fh)}
    return done.stdout, rows


def test_a_spreadsheet_imported_twice_reaches_hq_once_and_broken_rows_are_named(
    app, company, hq, agent_dir, pipeline_csv, tmp_path
):
    setup = branch_agent(agent_dir, "init", "--hq", hq.url, "--token", company.agent_tokens["SH01"])
    assert "connected to HQ as branch SH01" in setup.stdout, setup.stderr

    first, rows = import_csv(agent_dir, pipeline_csv, tmp_path / "first.csv")
    assert (
        f"5 row(s) queued ({GOOD_EVENTS} events), 0 already queued, 3 refused, "
        "1 of other branches skipped" in first
    )
    for line, (key, reason) in REFUSED.items():
        assert re.search(rf"line {line} \({key}\): refused: {re.escape(reason)}", first), first
    assert rows[9]["status"] == "skipped" and "'HZ01 001'" in rows[9]["reason"]
    pushed = branch_agent(agent_dir, "sync")
    assert f"pushed {GOOD_EVENTS} event(s) in 1 batch(es): {GOOD_EVENTS} synced" in pushed.stdout
    assert hq_count(app) == GOOD_EVENTS

    second, rows = import_csv(agent_dir, pipeline_csv, tmp_path / "second.csv")
    assert "0 row(s) queued (0 events), 5 already queued, 3 refused" in second
    assert {line for line, r in rows.items() if r["status"] == "refused"} == set(REFUSED)
    again = branch_agent(agent_dir, "sync")
    assert "pushed 0 event(s)" in again.stdout, again.stderr

    assert hq_count(app) == GOOD_EVENTS
    with Outbox(agent_dir) as outbox:
        verdict = verify(app, outbox, "SH01")
    assert verdict.problems == {}
    assert verdict.queued == GOOD_EVENTS


def test_a_row_of_another_branch_imported_before_the_first_pull_is_rejected_by_hq_and_kept(
    app, company, hq, agent_dir, pipeline_csv
):
    offline = branch_agent(
        agent_dir, "init", "--hq", "http://127.0.0.1:9", "--token", company.agent_tokens["SH01"]
    )
    assert "HQ not reached yet" in offline.stderr
    imported = branch_agent(agent_dir, "import", str(pipeline_csv), "--quiet")
    assert "HQ's rep list is not known yet" in imported.stderr
    assert f"6 row(s) queued ({GOOD_EVENTS + 2} events)" in imported.stdout

    branch_agent(agent_dir, "init", "--hq", hq.url, "--token", company.agent_tokens["SH01"])
    pushed = branch_agent(agent_dir, "sync")

    assert f"{GOOD_EVENTS} synced, 2 rejected" in pushed.stdout, pushed.stderr
    assert hq_count(app) == GOOD_EVENTS
    with Outbox(agent_dir) as outbox:
        rejected = outbox.list(state="rejected")
    assert {r["hq_result"]["code"] for r in rejected} == {"rep_other_branch"}
    assert {r["rep"] for r in rejected} == {"HZ01-001"}
