"""CSV downloads of any table the API returns (``?format=csv``)."""

from __future__ import annotations

import csv
import io

from flask import Response

from hq_server.services.exports import csv_text


def _flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = ";".join(map(str, value))
        else:
            out[name] = "" if value is None else value
    return out


def csv_response(rows: list[dict], filename: str) -> Response:
    """Return ``rows`` (nested dicts become dotted columns) as a CSV download."""
    flat = [{k: csv_text(v) for k, v in _flatten(r).items()} for r in rows]
    columns: list[str] = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    return Response(
        buffer.getvalue().encode("utf-8-sig"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
