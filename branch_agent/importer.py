"""Turn a branch's spreadsheet into events: every row queued, or refused with the reason.

Two layouts are understood:

* the CRM pipeline export (``opportunity_id, sales_agent, product, account,
  deal_stage, engage_date, close_date, close_value``): each row becomes a
  ``deal.opened`` (stage ``visit`` once engaged) and, for closed rows, a
  ``deal.won`` or ``deal.lost`` on the close date;
* an activity sheet (``type, occurred_at, rep`` and optional ``customer``,
  ``deal``, ``id``; every other column is a field of the event's data).

Ids are derived from the row itself (UUIDv5), so importing a file twice queues
nothing new. Nothing is guessed: a row that does not say enough is refused.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from branch_agent.outbox import Outbox
from branch_agent.recorder import RecordError, branch_timezone, build_event
from shared.codes import slug
from shared.textfiles import TextFileError, csv_rows, read_text

NAMESPACE = uuid.UUID("6f1c1c2e-5b0c-4a8e-9d3f-2f4a7c1e9b10")
PIPELINE_COLUMNS = {"opportunity_id", "sales_agent", "product", "deal_stage", "engage_date"}
ACTIVITY_COLUMNS = {"type", "occurred_at", "rep"}
MIDDAY = time(12, 0)


class ImportFormatError(ValueError):
    """The file is not a layout this importer understands."""


@dataclass
class RowOutcome:
    """What happened to one spreadsheet row."""

    line: int
    key: str
    status: str  # queued, already_queued, refused, skipped
    events: int = 0
    reason: str = ""


@dataclass
class ImportReport:
    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def events_queued(self) -> int:
        return sum(r.events for r in self.rows if r.status == "queued")


def event_id(*parts: str) -> str:
    """Return the stable id of an event derived from a spreadsheet row."""
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


def _norm(name: str) -> str:
    return "".join(name.split()).casefold()


@dataclass
class Sheet:
    """A spreadsheet read once: its columns and its rows, each with the line it starts on."""

    path: Path
    columns: set[str]
    rows: list[tuple[int, dict]]
    encoding: str | None = None


def read_sheet(path: Path, encoding: str | None = None) -> Sheet:
    """Read a sheet's rows (UTF-8 unless ``encoding`` names another)."""
    try:
        columns, rows = csv_rows(read_text(path, encoding), path.name)
    except TextFileError as exc:
        raise ImportFormatError(str(exc)) from exc
    return Sheet(path, columns, rows, encoding)


def load_prices(folder: Path, encoding: str | None = None) -> dict[str, float]:
    """Read list prices from ``products.csv`` beside the pipeline file, if there is one."""
    path = folder / "products.csv"
    if not path.exists():
        return {}
    sheet = read_sheet(path, encoding)
    if not {"product", "sales_price"} <= sheet.columns:
        raise ImportFormatError(f"{path.name}: expected the columns product and sales_price")
    prices = {}
    for line, row in sheet.rows:
        try:
            prices[_norm(row["product"] or "")] = _money(row["sales_price"] or "", "sales_price")
        except RecordError as exc:
            raise ImportFormatError(f"{path.name}: line {line}: {_flatten(exc.errors)}") from exc
    return prices


def _money(value: str, column: str) -> float:
    """Read an amount of money from a cell; refuse text, NaN and infinities by the column."""
    try:
        amount = float(value.replace(",", ""))
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount):  # text, NaN, inf, and 1e400 (a float's infinity)
        raise RecordError({column: [f"not an amount: {value!r}"]})
    return amount


def _day(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise RecordError({column: [f"not a date (YYYY-MM-DD): {value!r}"]}) from exc


class PipelineRows:
    """Map pipeline-export rows to events for this branch."""

    def __init__(self, outbox: Outbox, prices: dict[str, float], undated_on: date | None):
        self.outbox = outbox
        self.prices = prices
        self.undated_on = undated_on
        self.tz = branch_timezone(outbox)
        self.reps = {r["code"] for r in outbox.get_cache("reps", [])}

    def at(self, day: date) -> datetime:
        return datetime.combine(day, MIDDAY, tzinfo=self.tz)

    def events(self, row: dict) -> list[dict]:
        opp = (row.get("opportunity_id") or "").strip()
        if not opp:
            raise RecordError({"opportunity_id": ["missing"]})
        rep = slug(row.get("sales_agent") or "")
        if self.reps and rep not in self.reps:
            raise _Skip(f"rep {row.get('sales_agent')!r} is not in this branch")
        product = (row.get("product") or "").strip()
        if _norm(product) not in self.prices:
            raise RecordError({"product": [f"unknown product {product!r} (not in products.csv)"]})
        stage = (row.get("deal_stage") or "").strip()
        if stage not in ("Prospecting", "Engaging", "Won", "Lost"):
            raise RecordError({"deal_stage": [f"unknown stage {stage!r}"]})
        if row.get("engage_date", "").strip():
            opened, opened_stage = _day(row["engage_date"], "engage_date"), "visit"
        elif stage == "Prospecting" and self.undated_on:
            opened, opened_stage = self.undated_on, "lead"
        else:
            raise RecordError(
                {
                    "engage_date": [
                        "missing: the row does not say when the deal started "
                        "(import with --undated-on DATE to date such rows)"
                    ]
                }
            )
        deal = str(uuid.uuid5(NAMESPACE, f"pipeline:{opp}"))
        customer = (row.get("account") or "").strip() or None
        common = {"deal": deal, "customer": customer}
        out = [
            build_event(
                self.outbox,
                "deal.opened",
                rep,
                {
                    "name": f"{product} {opp}",
                    "amount": self.prices[_norm(product)],
                    "currency": "USD",
                    "stage": opened_stage,
                },
                occurred_at=self.at(opened),
                event_id=event_id("pipeline", opp, "opened"),
                **common,
            )
        ]
        if stage in ("Won", "Lost"):
            closed = _day(row.get("close_date", ""), "close_date")
            if closed < opened:
                raise RecordError({"close_date": ["is before engage_date"]})
            value = (row.get("close_value") or "").strip()
            if stage == "Won" and not value:
                raise RecordError({"close_value": ["missing for a won deal"]})
            data = (
                {"amount": _money(value, "close_value"), "currency": "USD"}
                if stage == "Won"
                else {}
            )
            out.append(
                build_event(
                    self.outbox,
                    "deal.won" if stage == "Won" else "deal.lost",
                    rep,
                    data,
                    occurred_at=self.at(closed),
                    event_id=event_id("pipeline", opp, stage.lower()),
                    **common,
                )
            )
        return out


class ActivityRows:
    """Map activity-sheet rows (one event each) to events."""

    def __init__(self, outbox: Outbox, source: str):
        self.outbox = outbox
        self.source = source

    def events(self, row: dict) -> list[dict]:
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            moment = datetime.fromisoformat(cells["occurred_at"])
        except ValueError as exc:
            raise RecordError(
                {"occurred_at": [f"not a date-time: {cells['occurred_at']!r}"]}
            ) from exc
        data = {
            k: v
            for k, v in cells.items()
            if v and k not in ("id", "type", "occurred_at", "rep", "customer", "deal")
        }
        identity = cells.get("id") or event_id(
            "activity", *(f"{k}={cells[k]}" for k in sorted(cells))
        )
        return [
            build_event(
                self.outbox,
                cells["type"],
                cells["rep"],
                data,
                occurred_at=moment,
                deal=cells.get("deal") or None,
                customer=cells.get("customer") or None,
                event_id=identity,
            )
        ]


class _Skip(Exception):
    """The row belongs to another branch: not this agent's to send."""


def import_file(
    outbox: Outbox,
    path: Path,
    *,
    undated_on: date | None = None,
    progress: Callable[[int], None] | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Queue the events of every mappable row of ``path``; report every row."""
    return import_sheet(
        outbox, read_sheet(path, encoding), undated_on=undated_on, progress=progress
    )


def import_sheet(
    outbox: Outbox,
    sheet: Sheet,
    *,
    undated_on: date | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Queue the events of every mappable row of a sheet read before; report every row."""
    path = sheet.path
    if PIPELINE_COLUMNS <= sheet.columns:
        mapper = PipelineRows(outbox, load_prices(path.parent, sheet.encoding), undated_on)
        key_column = "opportunity_id"
    elif ACTIVITY_COLUMNS <= sheet.columns:
        mapper, key_column = ActivityRows(outbox, path.name), "id"
    else:
        raise ImportFormatError(
            f"{path.name}: unrecognised header {sorted(sheet.columns)}; expected the pipeline "
            f"export ({', '.join(sorted(PIPELINE_COLUMNS))}) or an activity sheet "
            f"({', '.join(sorted(ACTIVITY_COLUMNS))}, …)"
        )
    report = ImportReport()
    for line, row in sheet.rows:
        key = (row.get(key_column) or "").strip() or f"line {line}"
        report.rows.append(_import_row(outbox, mapper, row, line, key, path.name))
        if progress:
            progress(1)
    return report


def _import_row(outbox, mapper, row, line, key, source) -> RowOutcome:
    if None in row:  # csv.DictReader keeps the cells beyond the header under None
        return RowOutcome(line, key, "refused", reason="more cells than the header has columns")
    try:
        events = mapper.events(row)
    except _Skip as exc:
        return RowOutcome(line, key, "skipped", reason=str(exc))
    except RecordError as exc:
        return RowOutcome(line, key, "refused", reason=_flatten(exc.errors))
    except KeyError as exc:
        return RowOutcome(line, key, "refused", reason=f"missing column {exc}")
    added = outbox.add_many(events, source=source)
    fresh = sum(1 for _, new in added if new)
    if fresh == 0:
        return RowOutcome(line, key, "already_queued")
    return RowOutcome(line, key, "queued", events=fresh)


def _flatten(errors: dict, prefix: str = "") -> str:
    parts = []
    for name, value in errors.items():
        label = f"{prefix}{name}"
        if isinstance(value, dict):
            parts.append(_flatten(value, f"{label}."))
        else:
            parts.append(f"{label}: {'; '.join(map(str, value))}")
    return ", ".join(parts)
