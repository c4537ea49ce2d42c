"""The organisation: HQ -> regions -> branches, and the reps of each branch."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hq_server.extensions import db

UNIT_KINDS = ("hq", "region", "branch")


class OrgUnit(db.Model):
    """One version of an org unit placed in the tree.

    A unit that moves (a branch handed to another region) gets a new row with
    the same code; the old row is closed with ``active_to``. Events and deals
    keep pointing at the row that was active when they happened, so history
    stays under the region it was made in. ``path`` is the materialized path of
    row ids ("/1/4/17/"), so a subtree is one indexed prefix query.
    """

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    path: Mapped[str] = mapped_column(String(1024), default="")
    level: Mapped[int] = mapped_column(default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    active_from: Mapped[date] = mapped_column(Date, server_default=text("CURRENT_DATE"))
    active_to: Mapped[date | None] = mapped_column(Date)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id])

    __table_args__ = (
        Index(
            "uq_org_units_active_code",
            "code",
            unique=True,
            postgresql_where=text("active_to IS NULL"),
        ),
        Index("ix_org_units_path", "path", postgresql_ops={"path": "text_pattern_ops"}),
    )

    @property
    def is_active(self) -> bool:
        return self.active_to is None

    @property
    def path_ids(self) -> list[int]:
        """The row ids on ``path``, from HQ down to this row."""
        return [int(i) for i in self.path.strip("/").split("/")]

    def __repr__(self) -> str:
        return f"<OrgUnit {self.code} {self.path}>"


class Rep(db.Model):
    """A sales rep; belongs to the active row of one branch."""

    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)

    branch: Mapped[OrgUnit] = relationship()
