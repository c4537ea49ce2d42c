"""As-of pipeline reads equal a replay of the event log; the changes bridge balances.

Random histories of a few deals are pushed in random batches, with events occurring out of
order and late (an event may carry an older ``occurred_at`` than one already stored).
After each push the test notes the moment; cuts (snapshots) are taken at some of those
moments. Then every noted moment is read back through the API and compared with a replay:
the events HQ had stored by then, folded into deals and summed by the pure pipeline code.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import text

from hq_server.extensions import db
from hq_server.jobs.outbox import relay
from hq_server.metrics.bridge import TERMS, bridge
from hq_server.metrics.pipeline import converted, in_currency, summarize
from hq_server.metrics.projection import apply_event, new_deal
from hq_server.services import fx
from hq_server.services.pipeline_history import build_cut, pipeline_state
from hq_server.services.rebuild import replayable
from shared.stages import DEFAULT_STAGES
from tests.conftest import reset_tables
from tests.factories import Company, EventMaker, push

TZ = ZoneInfo("Asia/Shanghai")
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CLOSES = [date(2026, 12, 3), date(2026, 12, 28), date(2027, 1, 15), date(2027, 2, 2)]
PERIOD = (date(2026, 12, 1), date(2027, 1, 31))
HISTORY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _data(draw, kind: str) -> dict:
    amount = draw(st.integers(1, 5000)) + draw(st.sampled_from([0, 0.25, 0.5, 0.99]))
    if kind == "deal.opened":
        data = {
            "name": "d",
            "amount": amount,
            "currency": draw(st.sampled_from(["CNY", "CNY", "USD"])),
            "stage": draw(st.sampled_from(["lead", "visit", "quote"])),
        }
        if draw(st.booleans()):
            data["expected_close"] = draw(st.sampled_from(CLOSES)).isoformat()
        return data
    if kind == "deal.updated":
        choice = draw(st.sampled_from(["amount", "expected_close", "forecast_category"]))
        if choice == "amount":
            return {"amount": amount}
        if choice == "expected_close":
            return {"expected_close": draw(st.sampled_from(CLOSES)).isoformat()}
        return {"forecast_category": draw(st.sampled_from(["pipeline", "best_case", "commit"]))}
    if kind == "deal.stage_changed":
        return {"to": draw(st.sampled_from(["lead", "visit", "quote"]))}
    if kind == "deal.won":
        return {"amount": amount} if draw(st.booleans()) else {}
    return {"loss_reason": "price"}


@st.composite
def histories(draw) -> list[list[dict]]:
    """Return batches of events on a few deals, occurring out of push order."""
    maker = EventMaker("SH01-001")
    deals = [str(uuid.uuid4()) for _ in range(draw(st.integers(1, 4)))]
    events = []
    for deal in deals:
        kinds = ["deal.opened"] + draw(
            st.lists(
                st.sampled_from(["deal.updated", "deal.stage_changed", "deal.won", "deal.lost"]),
                max_size=4,
            )
        )
        for kind in kinds:
            minutes = draw(st.integers(0, 60 * 24 * 20))
            events.append(
                maker.make(kind, _data(draw, kind), deal=deal, at=BASE + timedelta(minutes=minutes))
            )
    order = draw(st.permutations(range(len(events))))
    shuffled = [events[i] for i in order]
    cuts = sorted(draw(st.sets(st.integers(1, len(shuffled)), max_size=len(shuffled))))
    batches, last = [], 0
    for cut in [*cuts, len(shuffled)]:
        if cut > last:
            batches.append(shuffled[last:cut])
            last = cut
    return batches


def _pushed(client, company, batches, snapshot_after: dict[int, bool]) -> list[datetime]:
    """Push the batches; return the moment after each; take cuts after some of them.

    ``snapshot_after`` maps a batch index to whether its cut is an upper-only one.
    """
    moments = []
    for i, batch in enumerate(batches):
        resp = push(client, company.agent("SH01"), batch)
        assert resp.status_code == 200, resp.get_json()
        time.sleep(0.002)
        moment = datetime.now(UTC)
        moments.append(moment)
        if i in snapshot_after:
            with client.application.app_context():
                build_cut(moment, upper=snapshot_after[i])
                db.session.commit()
        time.sleep(0.002)
    return moments


def replay(at: datetime, by: str = "received_at") -> dict:
    """Return every deal as the events HQ had stored (or that had happened) by ``at`` make it."""
    rows = db.session.execute(
        text(
            "SELECT id, rep_id, payload, NULL AS to_rep_id FROM events "
            f"WHERE status = 'counted' AND deal_id IS NOT NULL AND {by} <= :at"
        ),
        {"at": at},
    ).all()
    states: dict = {}
    for row in rows:
        event = replayable(row)
        state = states.setdefault(event["deal"], new_deal(event["deal"], 0))
        apply_event(state, event)
    return {
        deal_id: dict(zip(_FIELDS, pipeline_state(state, TZ), strict=True), id=deal_id)
        for deal_id, state in states.items()
    }


_FIELDS = (
    "branch_id",
    "status",
    "stage",
    "forecast_category",
    "expected_close",
    "closed_day",
    "currency",
    "amount",
)


def _expected(at: datetime, window: tuple | None, by: str = "received_at") -> dict:
    rate, _ = fx.converter(at.date())
    lo, hi = window or (None, None)
    summary = summarize(
        replay(at, by).values(), DEFAULT_STAGES, rate, currency="CNY", close_from=lo, close_to=hi
    )
    return summary.as_dict()


def _compare(body: dict, expected: dict) -> None:
    for key in ("open", "won", "rollups", "by_stage", "by_category", "by_month"):
        assert body[key] == expected[key], key


@HISTORY
@given(batches=histories(), data=st.data())
def test_as_of_equals_a_replay_of_what_hq_had_stored(app, client, batches, data):
    reset_tables(app)
    company = Company.create(app)
    with app.app_context():
        fx.set_rate("USD", date(2026, 1, 1), Decimal("7.13"), "test")
        db.session.commit()
    snapshot_after = data.draw(st.dictionaries(st.integers(0, len(batches) - 1), st.booleans()))
    moments = _pushed(client, company, batches, snapshot_after)
    before = BASE - timedelta(days=1)
    for at in [before, *moments]:
        for unit, window in (("HQ", None), ("HQ", PERIOD), ("SH01", None), ("EAST", PERIOD)):
            query = f"/api/v1/pipeline?unit={unit}&at={at.isoformat().replace('+', '%2B')}"
            if window:
                query += f"&close_from={window[0]}&close_to={window[1]}"
            resp = client.get(query, headers=company.user("finance"))
            assert resp.status_code == 200, resp.get_json()
            with app.app_context():
                _compare(resp.get_json(), _expected(at, window))
    # The last moment is the live pipeline.
    live = client.get("/api/v1/pipeline?unit=HQ", headers=company.user("finance")).get_json()
    with app.app_context():
        _compare(live, _expected(moments[-1], None))
    # The other basis: what had happened by a moment, whenever it arrived.
    for minutes in data.draw(st.lists(st.integers(0, 60 * 24 * 21), min_size=1, max_size=3)):
        at = BASE + timedelta(minutes=minutes)
        resp = client.get(
            f"/api/v1/pipeline?unit=HQ&basis=occurred&at={_q(at)}",
            headers=company.user("finance"),
        )
        assert resp.status_code == 200, resp.get_json()
        with app.app_context():
            _compare(resp.get_json(), _expected(at, None, "occurred_at"))


@HISTORY
@given(batches=histories(), data=st.data())
def test_the_changes_bridge_balances_and_matches_a_replay(app, client, batches, data):
    reset_tables(app)
    company = Company.create(app)
    with app.app_context():
        fx.set_rate("USD", date(2026, 1, 1), Decimal("6.9"), "test")
        db.session.commit()
    snapshot_after = data.draw(st.dictionaries(st.integers(0, len(batches) - 1), st.booleans()))
    moments = [BASE - timedelta(days=1), *_pushed(client, company, batches, snapshot_after)]
    i = data.draw(st.integers(0, len(moments) - 1))
    j = data.draw(st.integers(i, len(moments) - 1))
    t0, t1 = moments[i], moments[j]
    unit = data.draw(st.sampled_from(["SH01", "EAST"]))
    _matches_a_replay(app, client, company, unit, t0, t1)


def _matches_a_replay(app, client, company, unit: str, t0: datetime, t1: datetime) -> dict:
    """Check the bridge from t0 to t1, and each term's deals, against a replay; return it."""
    query = (
        f"/api/v1/pipeline/changes?unit={unit}&from={_q(t0)}&to={_q(t1)}"
        f"&close_from={PERIOD[0]}&close_to={PERIOD[1]}"
    )
    body = client.get(query, headers=company.user("region_manager")).get_json()
    assert body["balanced"] is True
    with app.app_context():
        rate, _ = fx.converter(t1.date())
        rate = in_currency(rate, "CNY")
        start, end = replay(t0), replay(t1)
        expected = bridge(start, end, *PERIOD, rate_start=rate)
        start, end = ({str(k): v for k, v in side.items()} for side in (start, end))
    for name in TERMS:
        term = getattr(expected, name)
        assert body["terms"][name] == {"count": term.count, "amount": str(term.amount)}, name
    # Each moving term drills down to exactly its deals, with their states at both moments.
    for name in ("new", "pulled_in", "pushed_out", "won", "lost", "increased", "decreased"):
        drill = client.get(f"{query}&term={name}", headers=company.user("region_manager"))
        deals = drill.get_json()["deals"]
        assert [d["id"] for d in deals] == [str(i) for i in getattr(expected, name).ids], name
        for deal in deals:
            assert deal["start"] == _side(start.get(deal["id"]), rate), (name, "start")
            assert deal["end"] == _side(end.get(deal["id"]), rate), (name, "end")
    return expected


def test_every_term_of_the_bridge_lists_its_deals_in_either_currency(app, client, company):
    with app.app_context():
        fx.set_rate("USD", date(2026, 1, 1), Decimal("6.9"), "test")
        db.session.commit()
    rep = EventMaker("SH01-001")
    deals = {}
    before = []
    for name in ("increased", "decreased", "pushed_out", "won", "lost", "pulled_in"):
        for currency in ("CNY", "USD"):
            close = "2027-03-01" if name == "pulled_in" else "2026-12-15"
            data = {"name": name, "amount": 100, "currency": currency, "expected_close": close}
            event = rep.make("deal.opened", data, deal=str(uuid.uuid4()))
            deals[name, currency] = event["deal"]
            before.append(event)
    assert push(client, company.agent("SH01"), before).status_code == 200
    t0 = datetime.now(UTC)
    time.sleep(0.002)
    after = []
    for currency in ("CNY", "USD"):
        data = {"name": "new", "amount": 70.5, "currency": currency, "expected_close": "2027-01-02"}
        after.append(rep.make("deal.opened", data, deal=str(uuid.uuid4())))
        after += [
            rep.make("deal.updated", {"amount": 150.25}, deal=deals["increased", currency]),
            rep.make("deal.updated", {"amount": 40}, deal=deals["decreased", currency]),
            rep.make(
                "deal.updated", {"expected_close": "2027-02-10"}, deal=deals["pushed_out", currency]
            ),
            rep.make("deal.won", {}, deal=deals["won", currency]),
            rep.make("deal.lost", {"loss_reason": "price"}, deal=deals["lost", currency]),
            rep.make(
                "deal.updated", {"expected_close": "2027-01-20"}, deal=deals["pulled_in", currency]
            ),
        ]
    assert push(client, company.agent("SH01"), after).status_code == 200
    time.sleep(0.002)
    t1 = datetime.now(UTC)

    expected = _matches_a_replay(app, client, company, "EAST", t0, t1)

    for name in ("new", "pulled_in", "pushed_out", "won", "lost", "increased", "decreased"):
        assert len(getattr(expected, name).ids) == 2, name


def _side(state: dict | None, rate) -> dict | None:
    """Return a deal's state as the bridge's drill-down shows it."""
    if state is None:
        return None
    close = state["expected_close"]
    return {
        "status": state["status"],
        "stage": state["stage"],
        "expected_close": close and close.isoformat(),
        "currency": state["currency"],
        "amount": str(converted(state, rate)),
    }


def _q(moment: datetime) -> str:
    return moment.isoformat().replace("+", "%2B")


def test_an_as_of_window_must_be_whole_months(client, company):
    resp = client.get(
        f"/api/v1/pipeline?unit=HQ&at={_q(BASE)}&close_from=2026-12-02&close_to=2026-12-31",
        headers=company.user("finance"),
    )
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid_window"


def test_a_moment_without_an_offset_is_in_the_company_time_zone(client, company):
    rep = EventMaker("SH01-001")
    push(client, company.agent("SH01"), [rep.deal_opened(amount=100.0)])
    local_now = datetime.now(TZ).replace(tzinfo=None, microsecond=0) + timedelta(minutes=1)
    body = client.get(
        f"/api/v1/pipeline?unit=HQ&at={local_now.isoformat()}", headers=company.user("finance")
    ).get_json()
    assert body["open"]["count"] == 1
    # Read as UTC the same clock time would be eight hours ahead (or behind): not the same.
    assert body["at"].endswith("+08:00")


def test_slipped_deals_are_named_with_how_often_their_close_moved(client, company):
    rep = EventMaker("SH01-001")
    deal = str(uuid.uuid4())
    opened = rep.make(
        "deal.opened",
        {"name": "x", "amount": 10, "currency": "CNY", "expected_close": "2026-12-05"},
        deal=deal,
    )
    start = datetime.now(UTC)
    push(client, company.agent("SH01"), [opened])
    for close in ("2026-12-20", "2026-12-10", "2027-01-05"):
        push(
            client,
            company.agent("SH01"),
            [rep.make("deal.updated", {"expected_close": close}, deal=deal)],
        )
    body = client.get(
        f"/api/v1/pipeline/changes?unit=HQ&from={_q(start)}&close_from=2026-12-01"
        "&close_to=2026-12-31",
        headers=company.user("finance"),
    ).get_json()
    assert body["slipped"] == [{"id": deal, "times": 2}]
    assert body["terms"]["new"]["count"] == 0 and body["terms"]["end"]["count"] == 0


def test_a_large_export_is_built_in_the_background_for_its_owner(app, client, company, queue):
    rep = EventMaker("SH01-001")
    push(client, company.agent("SH01"), [rep.deal_opened(amount=1234.5)])
    resp = client.post(
        "/api/v1/exports", json={"unit": "EAST"}, headers=company.user("region_manager")
    )
    assert resp.status_code == 202, resp.get_json()
    status_url = resp.get_json()["status_url"]
    pending = client.get(status_url, headers=company.user("region_manager")).get_json()
    assert pending["status"] == "queued" and pending["download_url"] is None
    with app.app_context():
        assert relay(queue) == 1
        worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
        worker.work(burst=True)
    assert len(queue.failed_job_registry) == 0
    status = client.get(status_url, headers=company.user("region_manager")).get_json()
    assert status["status"] == "done" and status["download_url"]
    other = client.get(status["download_url"], headers=company.user("finance"))
    assert other.status_code == 404  # another user's export is as good as missing
    file = client.get(status["download_url"], headers=company.user("region_manager"))
    book = load_workbook(io.BytesIO(file.data))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    api = client.get("/api/v1/pipeline?unit=EAST", headers=company.user("region_manager"))
    assert summary["open amount"] == Decimal(api.get_json()["open"]["amount"])
    assert [row[7] for row in book["Deals"].iter_rows(min_row=2, values_only=True)] == [
        Decimal("1234.50")
    ]


def test_an_export_of_a_unit_out_of_scope_is_refused_at_once(client, company):
    resp = client.post(
        "/api/v1/exports", json={"unit": "WEST"}, headers=company.user("branch_manager")
    )
    assert resp.status_code == 404


def test_weighted_amounts_follow_the_playbook_in_force_at_the_moment(app, client, company):
    from pathlib import Path

    from hq_server.services.pipeline_history import snapshot_pipeline

    source = (Path(__file__).resolve().parents[2] / "config" / "playbook.default.yaml").read_text()
    rep = EventMaker("SH01-001", start=datetime.now(UTC))
    deal = str(uuid.uuid4())
    opened = {"name": "x", "amount": 1000, "currency": "CNY", "stage": "quote"}
    push(client, company.agent("SH01"), [rep.make("deal.opened", opened, deal=deal)])
    before = datetime.now(UTC)
    time.sleep(0.002)
    hq = company.user("hq_manager")
    assert client.post("/api/v1/playbooks", data=source, headers=hq).status_code == 201
    bolder = source.replace("probability: 0.60", "probability: 0.75").replace(
        "version: 1", "version: 2"
    )
    resp = client.post("/api/v1/playbooks", data=bolder, headers=hq)
    assert resp.status_code == 201, resp.get_json()
    after = datetime.now(UTC)
    with app.app_context():
        taken = snapshot_pipeline(now=after + timedelta(days=2))
        db.session.commit()
    assert taken["cuts"] >= 2  # a midnight and each publication

    def weighted(at: datetime) -> str:
        body = client.get(f"/api/v1/pipeline?unit=HQ&at={_q(at)}", headers=company.user("finance"))
        return body.get_json()["open"]["weighted"]

    assert weighted(before) == "600.00"
    assert weighted(after) == "750.00"
    assert weighted(after + timedelta(days=1, hours=1)) == "750.00"  # from a midnight cut
    live = client.get("/api/v1/pipeline?unit=HQ", headers=company.user("finance")).get_json()
    assert live["open"]["weighted"] == "750.00"
