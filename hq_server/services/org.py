"""Load and change the organisation tree (HQ -> regions -> branches -> reps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import available_timezones

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import make_transient_to_detached

from hq_server.extensions import db
from hq_server.models import OrgUnit, Rep
from hq_server.services.rows import execute_plain
from shared.codes import slug
from shared.textfiles import TextFileError, csv_rows, read_text

HQ_CODE = "HQ"
CODE_RE = r"^[A-Z0-9][A-Z0-9_.-]{0,63}$"


class OrgImportError(ValueError):
    """The file could not be imported; ``errors`` says where and why."""

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.errors = errors or {}


class OrgRowSchema(Schema):
    """One rep with its branch and region, the unit of every import format."""

    class Meta:
        unknown = RAISE

    region_code = fields.String(required=True, validate=validate.Regexp(CODE_RE))
    region_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    branch_code = fields.String(required=True, validate=validate.Regexp(CODE_RE))
    branch_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    timezone = fields.String(load_default=None, validate=validate.OneOf(available_timezones()))
    rep_code = fields.String(load_default=None, validate=validate.Regexp(CODE_RE))
    rep_name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))


ROW_SCHEMA = OrgRowSchema()


@dataclass
class ImportReport:
    """What an import changed."""

    created: dict[str, int] = field(default_factory=lambda: {"region": 0, "branch": 0, "rep": 0})
    moved: list[str] = field(default_factory=list)
    unchanged: int = 0


def read_org_file(path: Path, encoding: str | None = None) -> list[dict]:
    """Read a CSV or YAML org file into raw rows for ``OrgRowSchema``.

    UTF-8 unless ``encoding`` names another (``shared.textfiles``).
    """
    try:
        text = read_text(path, encoding)
        if path.suffix.lower() in (".yaml", ".yml"):
            return _rows_from_yaml(text)
        header, raw_rows = csv_rows(text, path.name)
    except TextFileError as exc:
        raise OrgImportError(str(exc)) from exc
    return _rows_from_csv(header, [row for _, row in raw_rows])


_SALES_TEAM_COLUMNS = ("sales_agent", "manager", "regional_office")


def _rows_from_csv(header: set[str], raw_rows: list[dict]) -> list[dict]:
    sales_team = set(_SALES_TEAM_COLUMNS) <= header  # region = office, branch = manager's team
    if not sales_team and not {"region_code", "branch_code"} <= header:
        raise OrgImportError(
            "unrecognised CSV header: expected sales_agent,manager,regional_office or "
            "region_code,region_name,branch_code,branch_name[,timezone,rep_code,rep_name]",
            {"header": sorted(header)},
        )
    rows, errors = [], {}
    for number, raw in enumerate(raw_rows, start=2):
        if None in raw:  # DictReader keeps the cells beyond the header under None
            errors[f"row {number}"] = {"_row": ["more cells than the header has columns"]}
            continue
        cells = {k.strip(): v.strip() for k, v in raw.items() if v and v.strip()}
        missing = [c for c in _SALES_TEAM_COLUMNS if c not in cells] if sales_team else []
        if missing:
            errors[f"row {number}"] = {c: ["Missing data for required field."] for c in missing}
        else:  # the general rows are checked whole by ``validate_rows``
            rows.append(_sales_team_row(cells) if sales_team else cells)
    if errors:
        raise OrgImportError(f"{len(errors)} row(s) are not valid; nothing was imported", errors)
    return rows


def _sales_team_row(cells: dict) -> dict:
    """One row of the sales-team sheet as an org row."""
    agent, manager, region = (cells[c] for c in _SALES_TEAM_COLUMNS)
    return {
        "region_code": slug(region),
        "region_name": region,
        "branch_code": slug(manager),
        "branch_name": f"{manager}'s team",
        "rep_code": slug(agent),
        "rep_name": agent,
    }


def _rows_from_yaml(text: str) -> list[dict]:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise OrgImportError(f"not valid YAML: {exc}") from exc
    except RecursionError as exc:  # nested deeper than the parser goes
        raise OrgImportError("not valid YAML: nested too deeply") from exc
    rows = []
    for i, region in enumerate(_mappings(doc, "regions", "the file")):
        where = f"regions[{i}]"
        for j, branch in enumerate(_mappings(region, "branches", where)):
            base = {
                "region_code": region.get("code"),
                "region_name": region.get("name", region.get("code")),
                "branch_code": branch.get("code"),
                "branch_name": branch.get("name", branch.get("code")),
            }
            if branch.get("timezone") or region.get("timezone"):
                base["timezone"] = branch.get("timezone") or region.get("timezone")
            reps = _mappings(branch, "reps", f"{where}.branches[{j}]") or [{}]
            for rep in reps:
                row = dict(base)
                if rep:
                    row.update(rep_code=rep.get("code"), rep_name=rep.get("name", rep.get("code")))
                rows.append(row)
    return rows


def _mappings(parent, key: str, where: str) -> list[dict]:
    """Return ``parent[key]``, a list of mappings (none when absent); refuse any other shape."""
    if not isinstance(parent, dict):
        raise OrgImportError(f"{where}: expected a mapping with {key!r}, found {parent!r:.80}")
    items = parent.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise OrgImportError(
            f"{where}.{key}: expected a list of mappings (code, name, …), found {items!r:.80}"
        )
    return items


def validate_rows(raw_rows: list[dict]) -> list[dict]:
    """Check every row; raise ``OrgImportError`` naming each bad row and field."""
    rows, errors = [], {}
    for number, raw in enumerate(raw_rows, start=2):
        try:
            rows.append(ROW_SCHEMA.load(raw))
        except ValidationError as exc:
            errors[f"row {number}"] = exc.normalized_messages()
    if errors:
        raise OrgImportError(f"{len(errors)} row(s) are not valid; nothing was imported", errors)
    return rows


def ensure_hq(timezone: str) -> OrgUnit:
    """Return the active HQ unit, creating it on first use."""
    hq = active_unit(HQ_CODE)
    if hq is None:
        hq = OrgUnit(code=HQ_CODE, name="Headquarters", kind="hq", level=0, timezone=timezone)
        db.session.add(hq)
        db.session.flush()
        hq.path = f"/{hq.id}/"
    return hq


def active_unit(code: str) -> OrgUnit | None:
    """Return the active row of the unit with ``code``, if any."""
    if "\x00" in code:  # no code holds it, and PostgreSQL would refuse the comparison
        return None
    return db.session.scalar(
        select(OrgUnit).where(OrgUnit.code == code, OrgUnit.active_to.is_(None))
    )


_UNIT_COLUMNS = tuple(c.key for c in OrgUnit.__table__.columns)
_ACTIVE_ROW = (
    f"SELECT {', '.join(_UNIT_COLUMNS)} FROM org_units WHERE code = %(code)s AND active_to IS NULL"
)


def read_active_unit(code: str) -> OrgUnit | None:
    """Return the active row of ``code`` for reading only, detached from the session.

    For requests that store under a unit and never change it (every push and pull of a
    branch): one plain statement, about a third of the ORM query's CPU. Its relationships
    are not loaded; reading one raises instead of querying.
    """
    rows = execute_plain(db.session.connection(), _ACTIVE_ROW, {"code": code})
    if not rows:
        return None
    unit = OrgUnit(**dict(zip(_UNIT_COLUMNS, rows[0], strict=True)))
    make_transient_to_detached(unit)
    return unit


def _place(code: str, name: str, kind: str, parent: OrgUnit, tz: str, report: ImportReport):
    unit = active_unit(code)
    if unit is not None and unit.kind != kind:
        raise OrgImportError(f"{code} is already a {unit.kind}, cannot also be a {kind}")
    if unit is not None and unit.parent_id == parent.id:
        unit.name = name
        return unit
    if unit is not None:
        # Moved: close the old row so its history stays where it was made.
        unit.active_to = date.today()
        report.moved.append(code)
    else:
        report.created[kind] += 1
    fresh = OrgUnit(
        code=code,
        name=name,
        kind=kind,
        parent_id=parent.id,
        timezone=tz,
        level=parent.level + 1,
        active_from=date.today(),
    )
    db.session.add(fresh)
    db.session.flush()
    fresh.path = f"{parent.path}{fresh.id}/"
    if unit is not None:
        for rep in db.session.scalars(select(Rep).where(Rep.branch_id == unit.id)):
            rep.branch_id = fresh.id
    return fresh


def check_consistent(rows: list[dict]) -> None:
    """Refuse a file that says two things of one code; raise ``OrgImportError`` per row.

    A code is a region or a branch, not both; a branch sits in one region and a rep in
    one branch. Rows are numbered as ``validate_rows`` numbers them.
    """
    kinds: dict[str, tuple[str, int]] = {}
    region_of: dict[str, tuple[str, int]] = {}
    branch_of: dict[str, tuple[str, int]] = {}
    errors: dict[str, dict] = {}

    def refuse(number: int, field_name: str, message: str) -> None:
        errors.setdefault(f"row {number}", {}).setdefault(field_name, []).append(message)

    for number, row in enumerate(rows, start=2):
        for field_name, kind in (("region_code", "region"), ("branch_code", "branch")):
            code = row[field_name]
            seen = kinds.setdefault(code, (kind, number))
            if seen[0] != kind:
                refuse(number, field_name, f"{code} is a {seen[0]} in row {seen[1]}")
        for code, parent, table, field_name in (
            (row["branch_code"], row["region_code"], region_of, "region_code"),
            (row["rep_code"], row["branch_code"], branch_of, "branch_code"),
        ):
            if code is None:
                continue
            seen = table.setdefault(code, (parent, number))
            if seen[0] != parent:
                refuse(number, field_name, f"{code} is under {seen[0]} in row {seen[1]}")
    if errors:
        raise OrgImportError(
            f"{len(errors)} row(s) contradict earlier rows; nothing was imported", errors
        )


def import_org(raw_rows: list[dict], default_timezone: str) -> ImportReport:
    """Create or update regions, branches and reps from validated rows (caller commits)."""
    rows = validate_rows(raw_rows)
    check_consistent(rows)
    report = ImportReport()
    hq = ensure_hq(default_timezone)
    units: dict[str, OrgUnit] = {}
    for row in rows:
        tz = row["timezone"] or default_timezone
        region = units.get(row["region_code"])
        if region is None:
            region = _place(row["region_code"], row["region_name"], "region", hq, tz, report)
            units[row["region_code"]] = region
        branch = units.get(row["branch_code"])
        if branch is None:
            branch = _place(row["branch_code"], row["branch_name"], "branch", region, tz, report)
            branch.timezone = tz
            units[row["branch_code"]] = branch
        if row["rep_code"]:
            _upsert_rep(row["rep_code"], row["rep_name"] or row["rep_code"], branch, report)
    return report


def _upsert_rep(code: str, name: str, branch: OrgUnit, report: ImportReport) -> None:
    rep = db.session.scalar(select(Rep).where(Rep.code == code))
    if rep is None:
        db.session.add(Rep(code=code, name=name, branch_id=branch.id))
        report.created["rep"] += 1
    elif rep.branch_id != branch.id or rep.name != name:
        rep.branch_id, rep.name = branch.id, name
    else:
        report.unchanged += 1
