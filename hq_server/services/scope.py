"""Who may see what: the one place scope is applied to org data.

Every caller is a ``Principal`` whose scope is the subtree of one org unit
(an agent's is its own branch). Reads name a unit by code; ``resolve_unit``
returns it only when it lies inside the caller's subtree, and
``branch_ids_under`` returns the branch rows a query may touch. A unit out of
scope is answered exactly like a unit that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hq_server.extensions import db
from hq_server.models import OrgUnit


class OutOfScope(LookupError):
    """The unit does not exist or the caller may not see it."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    kind: str  # "agent" or "user"
    role: str  # a user role, or "agent"
    scope_code: str
    branch_id: int | None = None
    user_id: int | None = None
    token_id: int | None = None

    @classmethod
    def from_user(cls, user, token_id: int | None = None) -> Principal:
        """Build the principal of a user (a session, a background job on their behalf)."""
        return cls("user", user.role, user.scope_unit.code, user_id=user.id, token_id=token_id)


def unit_paths(code: str) -> list[str]:
    """Return the materialized paths of every row (version) of unit ``code``."""
    return list(db.session.scalars(select(OrgUnit.path).where(OrgUnit.code == code)))


def _under(paths: list[str]) -> list:
    """Return (id, kind, path) of every unit row under ``paths`` (plain rows: HQ has many)."""
    if not paths:
        return []
    cond = db.or_(*(OrgUnit.path.startswith(p, autoescape=True) for p in paths))
    return list(db.session.execute(select(OrgUnit.id, OrgUnit.kind, OrgUnit.path).where(cond)))


def resolve_unit(principal: Principal, code: str) -> OrgUnit:
    """Return the active (or latest) row of unit ``code`` if the caller may see it."""
    rows = list(
        db.session.scalars(
            select(OrgUnit)
            .where(OrgUnit.code == code)
            .order_by(OrgUnit.active_from.desc(), OrgUnit.id.desc())
        )
    )
    scope = unit_paths(principal.scope_code)
    if not rows or not any(r.path.startswith(s) for r in rows for s in scope):
        raise OutOfScope(code)
    return rows[0]


def branch_ids_under(principal: Principal, code: str) -> list[int]:
    """Return ids of every branch row under unit ``code`` (all its versions) in scope."""
    resolve_unit(principal, code)
    scope = unit_paths(principal.scope_code)
    return [
        u.id
        for u in _under(unit_paths(code))
        if u.kind == "branch" and any(u.path.startswith(s) for s in scope)
    ]


def unit_row_ids(principal: Principal, code: str) -> list[int]:
    """Return the ids of the rows (versions) of unit ``code`` inside the caller's scope."""
    resolve_unit(principal, code)
    scope = unit_paths(principal.scope_code)
    rows = db.session.execute(select(OrgUnit.id, OrgUnit.path).where(OrgUnit.code == code))
    return [i for i, path in rows if any(path.startswith(s) for s in scope)]


def rows_and_branches(principal: Principal, codes: list[str]) -> dict[str, tuple]:
    """Return each unit's ``(resolve_unit, unit_row_ids, branch_ids_under)`` in three reads.

    For a read of every child of a unit at once. A code out of scope is refused.
    """
    scope = unit_paths(principal.scope_code)
    rows = db.session.scalars(
        select(OrgUnit)
        .where(OrgUnit.code.in_(codes))
        .order_by(OrgUnit.active_from.desc(), OrgUnit.id.desc())
    )
    latest: dict[str, OrgUnit] = {}
    paths: list[str] = []
    code_of: dict[str, str] = {}  # a row id (as in paths) -> its unit's code
    out: dict[str, tuple] = {code: (None, [], []) for code in codes}
    for row in rows:
        latest.setdefault(row.code, row)
        paths.append(row.path)
        code_of[str(row.id)] = row.code
        if any(row.path.startswith(s) for s in scope):
            out[row.code][1].append(row.id)
    for branch in _under(paths):
        if branch.kind != "branch" or not any(branch.path.startswith(s) for s in scope):
            continue
        # Under a row is having it on one's path ("/1/4/17/" is under /1/4/).
        for code in {code_of[a] for a in branch.path.strip("/").split("/") if a in code_of}:
            out[code][2].append(branch.id)
    for code, (_, own, under) in out.items():
        if not own:
            raise OutOfScope(code)
        out[code] = (latest[code], own, under)
    return out


def units_on_path(alias: str) -> str:
    """Return SQL joining one row per unit on the path of org unit row ``alias``.

    The unit's id comes out as text column ``a`` (the row itself, its region, HQ), read
    from the materialized path, so totals can be added to every level in one statement.
    """
    return f"CROSS JOIN LATERAL unnest(string_to_array(trim(BOTH '/' FROM {alias}.path), '/')) AS a"
