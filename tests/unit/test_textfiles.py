"""Customers' text files: UTF-8 or what their mark or the caller names, refused with where."""

from __future__ import annotations

import codecs
import csv

import pytest

from shared.textfiles import TextFileError, csv_rows, read_text

TEXT = "code,name\nGZ01,广州分公司\n"


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode(),
        codecs.BOM_UTF8 + TEXT.encode(),
        TEXT.encode("utf-16"),  # with its mark, as spreadsheets save "Unicode text"
        TEXT.encode("utf-32"),
    ],
)
def test_utf8_and_marked_unicode_files_read_as_their_text(tmp_path, data):
    path = tmp_path / "sheet.csv"
    path.write_bytes(data)
    assert read_text(path) == TEXT


def test_a_legacy_code_page_is_refused_with_where_and_how_then_read_when_named(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(TEXT.encode("gb18030"))
    with pytest.raises(TextFileError, match=r"not utf-8 text: byte 15 \(line 2\).*gb18030"):
        read_text(path)
    assert read_text(path, "gb18030") == TEXT
    assert read_text(path, "GB18030") == TEXT


def test_unmarked_utf16_and_unknown_encodings_are_refused(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes("code,name\n".encode("utf-16-le"))  # valid UTF-8, full of NULs
    with pytest.raises(TextFileError, match="NUL characters"):
        read_text(path)
    assert read_text(path, "utf-16-le") == "code,name\n"
    with pytest.raises(TextFileError, match="unknown encoding"):
        read_text(path, "klingon")


def test_a_named_utf8_drops_the_mark(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(codecs.BOM_UTF8 + TEXT.encode())
    assert read_text(path, "UTF_8") == read_text(path, "utf8") == TEXT


def test_blank_lines_and_line_breaks_in_cells_keep_the_lines_right():
    text = 'a,b\r\n\r\n\r\n1,"x\r\ny"\r\n\n3,"p\rq\nr"\n5,6\n'
    assert [line for line, _ in csv_rows(text, "x.csv")[1]] == [4, 7, 10]


def test_csv_rows_come_with_the_line_they_start_on():
    text = 'a,b\n1,"two\nlines"\n3,4,extra\n'
    columns, rows = csv_rows(text, "x.csv")

    assert columns == {"a", "b"}
    assert rows == [(2, {"a": "1", "b": "two\nlines"}), (4, {"a": "3", "b": "4", None: ["extra"]})]


def test_a_csv_line_csv_cannot_read_is_refused_with_its_number():
    huge = "x" * (csv.field_size_limit() + 1)
    with pytest.raises(TextFileError, match=r"x\.csv: line 3: not readable as CSV: field larger"):
        csv_rows(f'a\nfine\n"{huge}"\n', "x.csv")
