"""Each child unit's pipeline read in one pass equals a read of each child on its own."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from hq_server.extensions import db
from hq_server.services import fx
from hq_server.services.org import import_org
from hq_server.services.pipeline import pipeline, pipeline_by_unit
from hq_server.services.pipeline_history import build_cut
from hq_server.services.scope import OutOfScope, Principal
from tests.factories import EventMaker, push

FINANCE = Principal("user", "finance", "HQ")
EAST_MANAGER = Principal("user", "region_manager", "EAST")
WINDOWS = [
    {},
    {"close_from": date(2026, 12, 1), "close_to": date(2027, 1, 31)},
    {"close_from": date(2027, 1, 1)},
]
ODD_WINDOW = {"close_from": date(2026, 12, 10), "close_to": date(2027, 1, 20)}


def _opened(rep: EventMaker, amount, currency: str, stage: str, close: str | None) -> dict:
    data = {"name": "d", "amount": amount, "currency": currency, "stage": stage}
    if close:
        data["expected_close"] = close
    return rep.make("deal.opened", data, deal=str(uuid.uuid4()))


def _moment() -> datetime:
    time.sleep(0.002)
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


def _move_sh01_to_west(app) -> None:
    with app.app_context():
        row = {"region_code": "WEST", "region_name": "West", "branch_code": "SH01"}
        row |= {"branch_name": "Branch SH01", "rep_code": "SH01-001", "rep_name": "Rep SH01-001"}
        assert import_org([row], "Asia/Shanghai").moved == ["SH01"]
        db.session.commit()


@pytest.fixture
def history(app, client, company) -> list[datetime]:
    """Deals in every branch, in two currencies, won and lost, before and after cuts and a
    move of SH01 from EAST to WEST; return moments to read the pipeline at."""
    with app.app_context():
        fx.set_rate("USD", date(2026, 1, 1), Decimal("7.13"), "test")
        db.session.commit()
    reps = {b: EventMaker(f"{b}-001") for b in ("SH01", "HZ01", "CD01")}
    moments = [_moment()]
    for n, (branch, rep) in enumerate(reps.items()):
        first = _opened(rep, 1000.5 + n, "CNY", "quote", "2026-12-15")
        batch = [
            first,
            _opened(rep, 333.33, "USD", "visit", "2027-01-10"),
            _opened(rep, 77.77, "CNY", "lead", None),
            rep.make("deal.updated", {"forecast_category": "commit"}, deal=first["deal"]),
        ]
        won = _opened(rep, 250, "CNY", "quote", "2026-12-20")
        batch += [won, rep.make("deal.won", {"amount": 260}, deal=won["deal"])]
        assert push(client, company.agent(branch), batch).status_code == 200
    moments.append(_moment())
    with app.app_context():
        build_cut(moments[-1])
        build_cut(_moment(), upper=True)
        db.session.commit()
    for branch, rep in reps.items():
        lost = _opened(rep, 90, "USD", "visit", "2027-01-05")
        batch = [lost, rep.make("deal.lost", {"loss_reason": "price"}, deal=lost["deal"])]
        batch.append(_opened(rep, 410.1, "CNY", "visit", "2026-12-31"))
        assert push(client, company.agent(branch), batch).status_code == 200
    moments.append(_moment())
    _move_sh01_to_west(app)
    rep = reps["SH01"]
    batch = [_opened(rep, 55.5, "USD", "quote", "2027-01-31"), _opened(rep, 5, "CNY", "lead", None)]
    assert push(client, company.agent("SH01"), batch).status_code == 200
    moments.append(_moment())
    with app.app_context():
        build_cut(_moment(), upper=True)
        db.session.commit()
    assert push(client, company.agent("CD01"), [reps["CD01"].deal_opened()]).status_code == 200
    return moments


def _each(principal: Principal, codes: list[str], **read) -> dict:
    return {code: pipeline(principal, code, **read) for code in codes}


CHILDREN = [
    (FINANCE, ["EAST", "WEST"]),  # the regions of HQ
    (FINANCE, ["CD01", "SH01"]),  # the branches of WEST, SH01 with its row from EAST too
    (EAST_MANAGER, ["HZ01", "SH01"]),  # SH01 as far as EAST's manager sees it
]


@pytest.mark.parametrize("principal,codes", CHILDREN)
def test_the_live_pipeline_of_each_child_equals_a_read_of_each(ctx, history, principal, codes):
    for window in [*WINDOWS, ODD_WINDOW]:
        grouped = pipeline_by_unit(principal, codes, **window)

        assert grouped == _each(principal, codes, **window), window
    assert all(report["open"]["count"] > 0 for report in grouped.values())


@pytest.mark.parametrize("principal,codes", CHILDREN)
def test_the_pipeline_of_each_child_at_a_past_moment_equals_a_read_of_each(
    ctx, history, principal, codes
):
    for at in history:
        for window in WINDOWS:
            grouped = pipeline_by_unit(principal, codes, at=at, **window)

            assert grouped == _each(principal, codes, at=at, **window), (at, window)
        occurred = pipeline_by_unit(principal, codes, at=at, basis="occurred")
        assert occurred == _each(principal, codes, at=at, basis="occurred"), at


def test_the_regions_of_hq_add_up_to_hq(ctx, history):
    grouped = pipeline_by_unit(FINANCE, ["EAST", "WEST"])
    hq = pipeline(FINANCE, "HQ")

    amounts = [Decimal(grouped[code]["open"]["weighted"]) for code in ("EAST", "WEST")]
    assert sum(amounts) == Decimal(hq["open"]["weighted"]) > 0


def test_a_child_outside_the_scope_is_refused(ctx, history):
    with pytest.raises(OutOfScope):
        pipeline_by_unit(EAST_MANAGER, ["HZ01", "CD01"])
