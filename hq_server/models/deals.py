"""The deal projection: each deal's current state, derived from its events."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, Index, Integer, Numeric, String, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.extensions import db


class Deal(db.Model):
    """Current state of one deal (or lead): rebuildable from the event log.

    ``reached_at`` maps each funnel stage to when the deal first entered it;
    ``versions`` holds the last-writer key of each field so that events
    arriving in any order give the same state.
    """

    __tablename__ = "deals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # No foreign keys (migration 0016): a projection written with ids ingest has just read.
    branch_id: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[int | None] = mapped_column(Integer)
    customer: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close: Mapped[date | None] = mapped_column(Date)
    forecast_category: Mapped[str | None] = mapped_column(String(16))
    loss_reason: Mapped[str | None] = mapped_column(String(500))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_day: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_day: Mapped[date | None] = mapped_column(Date)
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    reached_at: Mapped[dict] = mapped_column(JSONB, default=dict)
    versions: Mapped[dict] = mapped_column(JSONB, default=dict)

    __table_args__ = (
        Index("ix_deals_branch_opened", "branch_id", "opened_day"),
        Index("ix_deals_branch_closed", "branch_id", "closed_day"),
        # A rep's deals (the rep page); not on last_activity_at, which every event moves.
        Index("ix_deals_rep", "rep_id"),
    )
