"""Customers' text files (CSV sheets, YAML org files and playbooks): decoded, never guessed.

A file is read as UTF-8 (with or without a byte-order mark) or as the UTF-16/32 its mark
names, unless the caller names another encoding. A file that is not valid in the encoding
used is refused with the line and byte where it stops being so, and how to fix it: a sheet
saved by a spreadsheet in a legacy code page (GB18030, Windows-1252, ...) looks like UTF-8 to
no one, and decoding it by a guess would store wrong names without a word.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line of the csv module's input
# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
HINT = (
    "save it as UTF-8 ('CSV UTF-8' in a spreadsheet) or name its encoding, e.g. --encoding gb18030"
)


class TextFileError(ValueError):
    """The file cannot be read as text in the encoding used; the message says where and why."""


def read_text(path: Path, encoding: str | None = None, hint: str = HINT) -> str:
    """Return the text of ``path`` in ``encoding``, or by its byte-order mark, else UTF-8.

    ``hint`` ends the message of a file that does not decode: how to fix it.
    """
    data = path.read_bytes()
    if encoding is None:
        encoding = next((name for mark, name in _MARKS if data.startswith(mark)), "utf-8")
    try:
        codec = codecs.lookup(encoding).name  # "UTF8", "utf_8", "u8": utf-8
    except LookupError as exc:
        raise TextFileError(f"unknown encoding {encoding!r}") from exc
    try:
        # A mark is not part of the text.
        text = data.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TextFileError(
            f"{path.name} is not {codec} text: byte {exc.start} (line {line}) is "
            f"{data[exc.start : exc.start + 1]!r}; {hint}"
        ) from exc
    if "\x00" in text:
        raise TextFileError(
            f"{path.name} holds NUL characters, as UTF-16 read as UTF-8 does: name its "
            "encoding, e.g. --encoding utf-16-le"
        )
    return text


def csv_rows(text: str, name: str) -> tuple[set[str], list[tuple[int, dict]]]:
    """Parse CSV ``text`` of the file ``name``: its columns and its rows.

    Each row comes with the line it starts on (a quoted cell may hold line breaks); cells
    beyond the header are kept under the key ``None``, as ``csv.DictReader`` keeps them.
    A line csv cannot read (a cell beyond its size limit, say) is refused with its number.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict]] = []
    read_to = 1  # the last line of what was read
    try:
        columns = {h.strip() for h in reader.fieldnames or []}
        for row in reader:  # blank lines are skipped: count back from the row's last line
            cells = [*row.values(), *(row.get(None) or ())]  # (None: the extra cells' list)
            breaks = sum(len(_LINE_BREAK.findall(c)) for c in cells if isinstance(c, str))
            read_to = reader.line_num
            rows.append((read_to - breaks, row))
    except csv.Error as exc:
        raise TextFileError(f"{name}: line {read_to + 1}: not readable as CSV: {exc}") from exc
    return columns, rows
