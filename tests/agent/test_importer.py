"""Spreadsheet import: pipeline export and activity sheets, idempotent, every row reported."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branch_agent.importer import ImportFormatError, import_file
from branch_agent.outbox import Outbox

REPS = [
    {"code": "ANNA-SNELLING", "name": "Anna Snelling"},
    {"code": "CECILY-LAMPKIN", "name": "Cecily Lampkin"},
]


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "agent")
    box.set_cache(
        branch={"code": "DUSTIN-BRINKMANN", "name": "team", "timezone": "Asia/Shanghai"}, reps=REPS
    )
    yield box
    box.close()


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


PIPELINE = [
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
]


@pytest.fixture
def sheet(tmp_path):
    _write(
        tmp_path / "products.csv",
        ["product", "series", "sales_price"],
        [["GTX Pro", "GTX", "4821"], ["MG Special", "MG", "55"]],
    )
    return _write(
        tmp_path / "pipeline.csv",
        PIPELINE,
        [
            ["W1", "Anna Snelling", "GTXPro", "Acme", "Won", "2017-01-02", "2017-02-03", "4500"],
            ["L1", "Cecily Lampkin", "MG Special", "", "Lost", "2017-01-05", "2017-01-20", "0"],
            ["E1", "Anna Snelling", "MG Special", "Initech", "Engaging", "2017-03-01", "", ""],
            ["P1", "Anna Snelling", "MG Special", "", "Prospecting", "", "", ""],
            ["X1", "Moses Frase", "MG Special", "", "Won", "2017-01-02", "2017-02-03", "50"],
            ["B1", "Anna Snelling", "Quantum Box", "", "Won", "2017-01-02", "2017-02-03", "50"],
            ["B2", "Anna Snelling", "MG Special", "", "Won", "2017-02-30", "2017-03-03", "50"],
            ["B3", "Anna Snelling", "MG Special", "", "Won", "2017-03-01", "2017-02-01", "50"],
            ["B4", "Anna Snelling", "MG Special", "", "Won", "2017-03-01", "2017-03-05", ""],
        ],
    )


def test_pipeline_rows_become_deal_events_and_bad_rows_are_reported(outbox, sheet):
    report = import_file(outbox, sheet)
    status = {r.key: (r.status, r.events) for r in report.rows}
    assert status["W1"] == ("queued", 2)
    assert status["L1"] == ("queued", 2)
    assert status["E1"] == ("queued", 1)
    assert status["X1"][0] == "skipped"  # another branch's rep
    reasons = {r.key: r.reason for r in report.rows if r.status == "refused"}
    assert set(reasons) == {"P1", "B1", "B2", "B3", "B4"}
    assert "engage_date" in reasons["P1"] and "--undated-on" in reasons["P1"]
    assert "unknown product" in reasons["B1"]
    assert "engage_date" in reasons["B2"]
    assert "before engage_date" in reasons["B3"]
    assert "close_value" in reasons["B4"]
    bodies = {(r["body"]["type"], r["body"]["rep"]): r["body"] for r in outbox.list()}
    won = bodies[("deal.won", "ANNA-SNELLING")]
    assert won["data"] == {"amount": 4500.0, "currency": "USD"}
    assert won["occurred_at"] == "2017-02-03T12:00:00+08:00"
    opened = bodies[("deal.opened", "ANNA-SNELLING")]
    assert opened["data"]["stage"] == "visit"
    assert opened["customer"] in ("Acme", "Initech")
    assert outbox.counts()["pending"] == report.events_queued == 5


def test_importing_the_same_file_twice_queues_nothing_new(outbox, sheet):
    import_file(outbox, sheet)
    before = outbox.counts()
    again = import_file(outbox, sheet)
    assert again.events_queued == 0
    assert again.count("already_queued") == 3
    assert outbox.counts() == before


def test_undated_rows_are_queued_only_when_a_date_is_given(outbox, sheet):
    report = import_file(outbox, sheet, undated_on=date(2017, 12, 31))
    row = next(r for r in report.rows if r.key == "P1")
    assert (row.status, row.events) == ("queued", 1)
    opened = [r["body"] for r in outbox.list() if r["body"]["data"].get("stage") == "lead"]
    assert opened[0]["occurred_at"].startswith("2017-12-31T12:00")


def test_activity_sheets_map_columns_to_event_data(outbox, tmp_path):
    path = _write(
        tmp_path / "day.csv",
        ["type", "occurred_at", "rep", "customer", "decision_maker_met", "outcome", "connected"],
        [
            [
                "visit.logged",
                "2026-11-20T10:00:00+08:00",
                "ANNA-SNELLING",
                "Acme",
                "yes",
                "demo",
                "",
            ],
            ["call.logged", "2026-11-20T11:00:00+08:00", "CECILY-LAMPKIN", "", "", "", "false"],
            ["call.logged", "20/11/2026 11:00", "CECILY-LAMPKIN", "", "", "", "true"],
            ["call.logged", "2026-11-20T15:00:00", "CECILY-LAMPKIN", "", "", "", "true"],
            ["visit.logged", "2026-11-20T12:00:00+08:00", "ANNA-SNELLING", "", "maybe", "", ""],
        ],
    )
    report = import_file(outbox, path)
    assert [r.status for r in report.rows] == ["queued", "queued", "refused", "queued", "refused"]
    assert "occurred_at" in report.rows[2].reason
    assert "decision_maker_met" in report.rows[4].reason
    # A time without offset is the branch's local time.
    local = next(
        r["body"] for r in outbox.list() if r["body"]["occurred_at"].startswith("2026-11-20T15")
    )
    assert local["occurred_at"] == "2026-11-20T15:00:00+08:00"
    visit = next(r["body"] for r in outbox.list() if r["type"] == "visit.logged")
    assert visit["data"] == {"decision_maker_met": "yes", "outcome": "demo"}
    assert import_file(outbox, path).events_queued == 0


def test_an_unknown_layout_is_refused(outbox, tmp_path):
    path = _write(tmp_path / "x.csv", ["a", "b"], [["1", "2"]])
    with pytest.raises(ImportFormatError, match="unrecognised header"):
        import_file(outbox, path)


def test_a_sheet_in_another_encoding_is_refused_then_read_when_named(outbox, tmp_path):
    path = tmp_path / "day.csv"
    path.write_bytes(
        "type,occurred_at,rep,customer,connected\n"
        "call.logged,2026-11-20T11:00:00+08:00,ANNA-SNELLING,广州机械,true\n".encode("gb18030")
    )
    with pytest.raises(ImportFormatError, match="not utf-8 text"):
        import_file(outbox, path)
    assert outbox.list() == []  # nothing queued from a file that was not read
    report = import_file(outbox, path, encoding="gb18030")
    assert [r.status for r in report.rows] == ["queued"]
    assert outbox.list()[0]["body"]["customer"] == "广州机械"


def test_a_row_is_reported_on_the_line_it_starts_on(outbox, tmp_path):
    path = _write(
        tmp_path / "day.csv",
        ["type", "occurred_at", "rep", "outcome", "decision_maker_met"],
        [
            ["visit.logged", "2026-11-20T10:00:00+08:00", "ANNA-SNELLING", "one\ntwo\nthree", "y"],
            ["visit.logged", "2026-11-20T11:00:00+08:00", "ANNA-SNELLING", "", "maybe"],
        ],
    )
    report = import_file(outbox, path)

    assert [(r.line, r.status) for r in report.rows] == [(2, "queued"), (5, "refused")]
    assert outbox.list()[0]["body"]["data"]["outcome"] == "one\ntwo\nthree"


def test_a_row_with_more_cells_than_the_header_is_refused(outbox, tmp_path):
    path = tmp_path / "day.csv"
    path.write_text(
        "type,occurred_at,rep,connected\n"
        "call.logged,2026-11-20T11:00:00+08:00,ANNA-SNELLING,true,what is this\n"
        "call.logged,2026-11-20T12:00:00+08:00,ANNA-SNELLING,true\n",
        encoding="utf-8",
    )
    report = import_file(outbox, path)

    assert [(r.line, r.status) for r in report.rows] == [(2, "refused"), (3, "queued")]
    assert report.rows[0].reason == "more cells than the header has columns"
    assert len(outbox.list()) == 1


@pytest.mark.parametrize("value", ["lots", "NaN", "inf", "1e400"])
def test_a_close_value_that_is_no_amount_is_refused_by_its_column(outbox, sheet, value):
    with sheet.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][-1] = value  # the first row is a won deal
    _write(sheet, rows[0], rows[1:])

    report = import_file(outbox, sheet)

    assert report.rows[0].status == "refused"
    assert report.rows[0].reason == f"close_value: not an amount: {value!r}"


def test_a_price_list_with_a_bad_price_is_refused_with_its_line(outbox, sheet):
    _write(sheet.parent / "products.csv", ["product", "sales_price"], [["GTX Pro", "a lot"]])

    with pytest.raises(ImportFormatError, match=r"products\.csv: line 2: sales_price: not an"):
        import_file(outbox, sheet)
    assert outbox.list() == []


JUNK = st.one_of(st.text(max_size=8), st.sampled_from(["", '"', "a\nb", "=1", "NaN", "-1"]))
COLUMN_VALUES = {
    "opportunity_id": st.sampled_from(["W1", "W2", ""]),
    "sales_agent": st.sampled_from(["Anna Snelling", "Moses Frase"]),
    "product": st.sampled_from(["GTX Pro", "Quantum Box"]),
    "deal_stage": st.sampled_from(["Won", "Lost", "Engaging", "Prospecting"]),
    "engage_date": st.sampled_from(["2017-01-02", "2017-02-30", "1900-01-01", ""]),
    "close_date": st.sampled_from(["2017-03-01", "2016-12-01", "9999-12-31", ""]),
    "close_value": st.sampled_from(["4500", "lots", "1e400", "inf", "-5", "1,200", ""]),
    "type": st.sampled_from(["call.logged", "visit.logged", "deal.won", "nope"]),
    "occurred_at": st.sampled_from(["2026-11-20T11:00:00+08:00", "2026-11-20T11:00", "soon"]),
    "rep": st.sampled_from(["ANNA-SNELLING", "CECILY-LAMPKIN", ""]),
    "connected": st.sampled_from(["true", "false", "maybe", ""]),
}
SHEET_HEADERS = [
    PIPELINE,
    ["type", "occurred_at", "rep", "customer", "deal", "id", "connected", "outcome"],
]


@st.composite
def sheets(draw) -> tuple[list[str], list[list[str]]]:
    """A header and rows whose cells are mostly what the column expects, some junk, some extra."""
    header = draw(st.sampled_from(SHEET_HEADERS))
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        row = [draw(COLUMN_VALUES.get(c, JUNK) | JUNK if draw(st.booleans()) else
                    COLUMN_VALUES.get(c, JUNK)) for c in header]  # fmt: skip
        cut = draw(st.integers(0, 2))  # a short row, a whole one, or extra cells
        rows.append(row[: len(row) - 1] if cut == 0 else row + ["extra"] if cut == 2 else row)
    return header, rows


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(sheets())
def test_any_sheet_is_imported_row_by_row_or_refused(tmp_path_factory, sheet_rows):
    header, rows = sheet_rows
    folder = tmp_path_factory.mktemp("sheet")
    _write(folder / "products.csv", ["product", "sales_price"], [["GTX Pro", "4821"]])
    path = _write(folder / "sheet.csv", header, rows)
    with Outbox(folder / "agent") as box:
        box.set_cache(branch={"code": "B", "name": "b", "timezone": "Asia/Shanghai"}, reps=REPS)
        try:
            report = import_file(box, path)
        except ImportFormatError as exc:
            assert str(exc)
            return
        assert len(report.rows) == len(rows)  # every row reported
        assert all(r.status != "refused" or r.reason for r in report.rows)
        extra = [r for r, cells in zip(report.rows, rows, strict=True) if len(cells) > len(header)]
        assert all(r.status == "refused" for r in extra)  # a cell beyond the header: refused
