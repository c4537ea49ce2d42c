"""Cells of the exports: text a spreadsheet would run as a formula is made inert."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hq_server.services.exports import csv_text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+86 21 5555 0100", "'+86 21 5555 0100"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("-5.00", "-5.00"),  # a number stays a number
        ("ACME", "ACME"),
        ("", ""),
        (7, 7),
        (Decimal("-1.5"), Decimal("-1.5")),
    ],
)
def test_csv_cells(value, cell):
    assert csv_text(value) == cell
