"""Finance: dated exchange rates, the pipeline's history and background exports."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.extensions import db


class FxRate(db.Model):
    """How many units of the reporting currency one unit of ``currency`` was worth on ``day``."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 8))
    source: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineChange(db.Model):
    """One step of a deal's pipeline state as HQ applied it: −1 the old state, +1 the new.

    The sum of every row applied before a moment is the pipeline HQ knew at that moment,
    so an as-of read is a snapshot plus the rows since it (``services/pipeline_history``).
    """

    __tablename__ = "pipeline_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deal_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    branch_id: Mapped[int] = mapped_column(Integer)
    sign: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(64))
    forecast_category: Mapped[str | None] = mapped_column(String(16))
    expected_close: Mapped[date | None] = mapped_column(Date)
    closed_day: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))

    __table_args__ = (
        Index("ix_pipeline_changes_at", "at"),
        Index("ix_pipeline_changes_deal_at", "deal_id", "at"),
        Index("ix_pipeline_changes_branch_at", "branch_id", "at"),
    )


class PipelineCut(db.Model):
    """A moment the pipeline was summed up to, with what its weighted amounts assume."""

    __tablename__ = "pipeline_cuts"

    cut: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    playbook_version: Mapped[int | None] = mapped_column(Integer)
    reporting_currency: Mapped[str] = mapped_column(String(3))
    # "all": rows for every unit (midnights, publications); "upper": regions and HQ only
    # (every other hour).
    levels: Mapped[str] = mapped_column(String(8), default="all", server_default="all")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineSnapshot(db.Model):
    """The pipeline at a cut, summed per unit × status × stage × category × month.

    Every unit on a branch's path has its rows (the branch row, its region, HQ), so a
    read of any unit takes a few dozen rows.

    Deals in the reporting currency are summed (weighted rounded per deal before the
    sum); a deal in another currency keeps a row of its own (``deal_id``), so it can
    convert and round one deal at a time at the rate of the day asked for.
    """

    __tablename__ = "pipeline_snapshots"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cut: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), ForeignKey("pipeline_cuts.cut", ondelete="CASCADE")
    )
    unit_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(64))
    forecast_category: Mapped[str | None] = mapped_column(String(16))
    month: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str | None] = mapped_column(String(3))
    deal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    deals: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    weighted: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))

    __table_args__ = (Index("ix_pipeline_snapshots_cut_unit", "cut", "unit_id"),)


class ExportJob(db.Model):
    """A spreadsheet built in the background; the file is kept until it expires."""

    __tablename__ = "export_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(200))
    mimetype: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
