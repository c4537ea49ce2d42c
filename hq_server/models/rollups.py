"""Daily rollups: additive counts per (branch, rep, local day, metric).

Rollups are derived from the event log and carry no foreign keys (migration 0016): ingest
writes them with ids it has just read, and org units and reps are never deleted.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Date, Integer, Numeric, PrimaryKeyConstraint, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.extensions import db


class DailyRollup(db.Model):
    """One metric's total for one rep of one branch on one local day.

    Branch, region and HQ figures are sums over these rows, selected by the
    materialized path of the branch row, so a rep's row is also the finest
    grain of every org unit above it.
    """

    __tablename__ = "daily_rollups"
    # The value rides in the key's index: period sums are index-only scans.
    __table_args__ = (
        PrimaryKeyConstraint("branch_id", "day", "rep_id", "metric", postgresql_include=["value"]),
    )

    branch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rep_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)


class UnitRollup(db.Model):
    """One metric's total for an org unit row (branch, region, HQ) on one local day.

    The same increments as ``daily_rollups``, added to the branch row and every unit on
    its path when they are written, so a region's or HQ's period is a few hundred rows
    instead of one per rep and day. ``stripe`` (the branch id modulo ``STRIPES``) spreads
    the rows of a busy unit so concurrent pushes of different branches seldom wait on
    the same row; a read sums the stripes.
    """

    __tablename__ = "unit_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("unit_id", "day", "metric", "stripe", postgresql_include=["value"]),
    )

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(120), primary_key=True)
    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)


STRIPES = 16


class WeeklyRollup(db.Model):
    """The ``daily_rollups`` of one rep summed over a week (Monday to Sunday, local days).

    Written with the daily rows in the same statements, so a report over a long period
    reads one row per week for its whole weeks and daily rows only for the days at its
    ends. The open-deal counters of ``CURRENT_DAY`` are not summed into a week.
    """

    __tablename__ = "weekly_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("branch_id", "week", "rep_id", "metric", postgresql_include=["value"]),
    )

    branch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    rep_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)


class WeeklyUnitRollup(db.Model):
    """The ``unit_rollups`` of one unit row summed over a week, stripe by stripe."""

    __tablename__ = "weekly_unit_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("unit_id", "week", "metric", "stripe", postgresql_include=["value"]),
    )

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(120), primary_key=True)
    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)
