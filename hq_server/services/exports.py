"""Spreadsheets finance can open: typed numbers and dates, one sheet per view."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font

MONEY = "#,##0.00"
# What a spreadsheet reads as the start of a formula when a cell's text begins with it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value):
    """Return ``value`` for a CSV cell; text a spreadsheet would run as a formula is made inert.

    Names and customers come from branch staff: ``=HYPERLINK(…)`` typed as a customer must
    stay text when finance opens the file. Such text gets a leading apostrophe, which
    spreadsheets show as text (the OWASP advice); numbers (``-5.00``) are left as they are.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_money(value):
        return "'" + value
    return value


def _sheet(book: Workbook, title: str, header: list[str], rows: list[list]) -> None:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([Decimal(v) if _is_money(v) else v for v in row])
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, Decimal):
                cell.number_format = MONEY
            elif isinstance(cell.value, (date, datetime)):
                cell.number_format = "yyyy-mm-dd"
            elif cell.data_type == "f":  # openpyxl takes text that starts with = as a formula
                cell.data_type = "s"  # kept as the text it is; a text cell never runs
    for i, name in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(1, i).column_letter].width = max(12, len(name) + 2)


def _is_money(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        Decimal(value)
    except ArithmeticError:
        return False
    return value.replace(".", "", 1).lstrip("-").isdigit()


def _lines(table: dict) -> list[list]:
    return [[name, line["count"], line["amount"], line["weighted"]] for name, line in table.items()]


def pipeline_workbook(report: dict, deals: list[dict] | None) -> bytes:
    """Return the pipeline report and its deals as an .xlsx file (no deals: no such sheet)."""
    book = Workbook()
    book.remove(book.active)
    currency = report["currency"]
    _sheet(
        book,
        "Summary",
        ["figure", f"amount ({currency})"],
        [
            ["open deals (count)", report["open"]["count"]],
            ["open amount", report["open"]["amount"]],
            ["weighted amount", report["open"]["weighted"]],
            ["closed won", report["won"]["amount"]],
            ["open pipeline", report["rollups"]["open_pipeline"]],
            ["best case forecast", report["rollups"]["best_case_forecast"]],
            ["commit forecast", report["rollups"]["commit_forecast"]],
        ],
    )
    header = ["name", "count", f"amount ({currency})", f"weighted ({currency})"]
    _sheet(book, "By stage", ["stage", *header[1:]], _lines(report["by_stage"]))
    _sheet(book, "By category", ["forecast category", *header[1:]], _lines(report["by_category"]))
    _sheet(book, "By close month", ["month", *header[1:]], _lines(report["by_month"]))
    _sheet(
        book,
        "Rates",
        ["currency", f"rate to {currency}", "rate date"],
        [
            [c, r["rate"], date.fromisoformat(r["day"]) if r["day"] else None]
            for c, r in report["rates"].items()
        ],
    )
    if deals is not None:
        _deal_sheet(book, deals)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _deal_sheet(book: Workbook, deals: list[dict]) -> None:
    _sheet(
        book,
        "Deals",
        [
            "deal",
            "name",
            "customer",
            "branch",
            "rep",
            "stage",
            "status",
            "amount",
            "currency",
            "expected close",
            "closed",
        ],
        [
            [
                str(d["id"]),
                d["name"],
                d["customer"],
                d["branch"],
                d["rep"],
                d["stage"],
                d["status"],
                d["amount"],
                d["currency"],
                d["expected_close"],
                d["closed_day"],
            ]
            for d in deals
        ],
    )


def pipeline_csv(report: dict) -> bytes:
    """The pipeline's views as one CSV table: view, name, count, amount, weighted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["view", "name", "count", "amount", "weighted"])
    for view in ("by_stage", "by_category", "by_month"):
        for key, line in report[view].items():
            writer.writerow([view, csv_text(key), line["count"], line["amount"], line["weighted"]])
    return out.getvalue().encode()
