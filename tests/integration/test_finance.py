"""Finance: the live pipeline in the reporting currency, FX by date, the workbook."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from tests.factories import EventMaker, push


def _pipeline_story(client, company):
    rep = EventMaker("SH01-001")
    quoted, visited, won, lost = (str(uuid.uuid4()) for _ in range(4))
    push(
        client,
        company.agent("SH01"),
        [
            rep.make(
                "deal.opened",
                {
                    "name": "A",
                    "amount": 1000,
                    "currency": "CNY",
                    "expected_close": "2026-12-15",
                    "stage": "quote",
                },
                deal=quoted,
            ),
            rep.make(
                "deal.opened",
                {
                    "name": "B",
                    "amount": 500,
                    "currency": "USD",
                    "expected_close": "2027-01-10",
                    "stage": "visit",
                },
                deal=visited,
            ),
            rep.make("deal.opened", {"name": "C", "amount": 700, "currency": "CNY"}, deal=won),
            rep.make("deal.won", {"amount": 700}, deal=won),
            rep.make("deal.opened", {"name": "D", "amount": 900, "currency": "CNY"}, deal=lost),
            rep.make("deal.lost", {"loss_reason": "price"}, deal=lost),
        ],
    )


def test_a_currency_without_a_rate_is_refused_with_the_reason(client, company):
    _pipeline_story(client, company)
    resp = client.get("/api/v1/pipeline?unit=HQ", headers=company.user("finance"))
    assert resp.status_code == 422 and resp.get_json()["code"] == "missing_rate"
    assert "USD" in resp.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"currency": "USD", "day": "2026-11-01", "rate": "1e15"},
        {"currency": "USD", "day": "2026-11-01", "rate": "0"},
        {"currency": "USD", "day": "2026-11-01", "rate": "7.1", "source": "bank\u0000"},
    ],
)
def test_a_rate_the_table_cannot_hold_is_refused_with_the_reason(client, company, body):
    resp = client.post("/api/v1/fx", json=body, headers=company.user("finance"))

    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == "invalid"
    rates = client.get("/api/v1/fx", headers=company.user("finance")).get_json()["rates"]
    assert "USD" not in rates


def test_the_pipeline_is_weighted_per_deal_in_the_reporting_currency(client, company):
    _pipeline_story(client, company)
    staff = client.post(
        "/api/v1/fx",
        json={"currency": "USD", "day": "2026-11-01", "rate": "7.1"},
        headers=company.user("staff"),
    )
    assert staff.status_code == 403
    set_rate = client.post(
        "/api/v1/fx",
        json={"currency": "usd", "day": "2026-11-01", "rate": "7.1"},
        headers=company.user("finance"),
    )
    assert set_rate.status_code == 201
    body = client.get(
        "/api/v1/pipeline?unit=HQ&close_from=2026-11-01&close_to=2027-12-31",
        headers=company.user("finance"),
    ).get_json()
    assert body["currency"] == "CNY" and body["rates"]["USD"]["rate"].startswith("7.1")
    assert body["open"]["count"] == 2
    assert Decimal(body["open"]["amount"]) == Decimal("4550.00")  # 1000 + 500 x 7.1
    # Per deal: 1000 x 0.60 + 3550 x 0.30.
    assert Decimal(body["open"]["weighted"]) == Decimal("1665.00")
    assert Decimal(body["won"]["amount"]) == Decimal("700.00")
    assert set(body["by_month"]) == {"2026-12", "2027-01"}
    assert Decimal(body["by_category"]["omitted"]["amount"]) == Decimal("900.00")


def test_the_workbook_opens_with_the_same_totals(client, company):
    _pipeline_story(client, company)
    client.post(
        "/api/v1/fx",
        json={"currency": "USD", "day": "2026-11-01", "rate": "7.1"},
        headers=company.user("finance"),
    )
    api = client.get("/api/v1/pipeline?unit=EAST", headers=company.user("finance")).get_json()
    resp = client.get("/api/v1/pipeline?unit=EAST&format=xlsx", headers=company.user("finance"))
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(resp.get_data()))
    assert book.sheetnames == [
        "Summary",
        "By stage",
        "By category",
        "By close month",
        "Rates",
        "Deals",
    ]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["open amount"] == Decimal(api["open"]["amount"])
    assert summary["weighted amount"] == Decimal(api["open"]["weighted"])
    deals = list(book["Deals"].iter_rows(min_row=2, values_only=True))
    assert len(deals) == 4  # the open deals, and the won and the lost one (no window)


def test_text_a_spreadsheet_would_run_stays_text_in_the_exports(client, company):
    rep = EventMaker("SH01-001")
    deal = str(uuid.uuid4())
    formula = '=HYPERLINK("http://example.invalid","open me")'
    push(
        client,
        company.agent("SH01"),
        [
            rep.make(
                "deal.opened",
                {
                    "name": formula,
                    "amount": 1000,
                    "currency": "CNY",
                    "stage": "quote",
                    "expected_close": "2027-01-10",
                },
                deal=deal,
                customer="@SUM(A1:A9)",
            )
        ],
    )
    finance = company.user("finance")

    book = load_workbook(
        io.BytesIO(client.get("/api/v1/pipeline?unit=EAST&format=xlsx", headers=finance).data)
    )
    header = [c.value for c in book["Deals"][1]]
    row = book["Deals"][2]
    name, customer = row[header.index("name")], row[header.index("customer")]
    assert (name.value, name.data_type) == (formula, "s")
    assert (customer.value, customer.data_type) == ("@SUM(A1:A9)", "s")

    since = "2026-01-01T00:00:00%2B00:00"
    text = client.get(
        f"/api/v1/pipeline/changes?unit=EAST&from={since}&close_from=2026-01-01"
        "&close_to=2030-12-31&term=new&format=csv",
        headers=finance,
    ).get_data(as_text=True)
    assert f"'{formula}".replace('"', '""') in text
    assert "'@SUM(A1:A9)" in text
