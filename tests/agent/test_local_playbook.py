"""At the desk: the cached playbook judges an entry at once, and the entry is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from branch_agent.cli import main
from branch_agent.outbox import Outbox
from branch_agent.recorder import record
from shared.playbook import load_playbook

DEFAULT = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
REPS = [{"code": "SH01-001", "name": "Ann"}]


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path)
    box.set_cache(
        branch={"code": "SH01", "name": "Shanghai", "timezone": "Asia/Shanghai"},
        reps=REPS,
        playbook=load_playbook(DEFAULT).to_dict(),
    )
    yield box
    box.close()


def test_a_quote_without_a_decision_maker_visit_is_flagged_and_still_queued(outbox):
    opened = record(
        outbox, "deal.opened", "SH01-001", {"name": "ACME", "amount": 5000, "currency": "CNY"}
    )
    deal = opened.event["deal"]
    quote = record(outbox, "quote.issued", "SH01-001", {"amount": 10, "currency": "CNY"}, deal=deal)
    assert [v["rule_id"] for v in quote.verdicts] == ["quote-needs-decision-maker-visit"]
    assert quote.verdicts[0]["message"]["zh"].startswith("报价前")
    assert outbox.get(quote.seq)["verdicts"] == quote.verdicts
    assert outbox.counts()["pending"] == 2  # nothing typed is lost


def test_a_quote_after_a_decision_maker_visit_passes(outbox):
    deal = record(
        outbox, "deal.opened", "SH01-001", {"name": "ACME", "amount": 5000, "currency": "CNY"}
    ).event["deal"]
    record(outbox, "visit.logged", "SH01-001", {"decision_maker_met": True}, deal=deal)
    quote = record(outbox, "quote.issued", "SH01-001", {"amount": 10, "currency": "CNY"}, deal=deal)
    assert quote.verdicts == []


def test_without_a_playbook_nothing_is_judged(tmp_path):
    with Outbox(tmp_path) as box:
        result = record(box, "deal.lost", "R1", {}, deal="00000000-0000-0000-0000-000000000001")
        assert result.verdicts == []


def test_the_command_line_shows_the_verdict_in_both_languages(outbox, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(tmp_path),
            "record",
            "deal",
            "lost",
            "--rep",
            "SH01-001",
            "--deal",
            "00000000-0000-0000-0000-000000000002",
            "--loss-reason",
            "price",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "queued #1 deal.lost" in result.output
    assert (
        "lost-deal-needs-reason-and-competitor (held at HQ until fixed or approved)"
        in result.output
    )
    assert "丢单须填写" in result.output
