"""The append-only event log, per-agent sequence tracking, and the record of failed pushes."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.extensions import db


class Event(db.Model):
    """One accepted event, exactly as the agent sent it (``payload``)."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Checked per statement, not per row (migration 0017): every branch and rep an insert
    # or update names must exist, and an org unit or rep that events name cannot be deleted.
    branch_id: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    local_day: Mapped[date] = mapped_column(Date)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    deal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    customer: Mapped[str | None] = mapped_column(String(100))
    playbook_version: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    payload: Mapped[dict] = mapped_column(JSONB)
    # counted: in projections and rollups; pending: blocked by a rule until approved;
    # refused: an approver said no. Only counted events count anywhere.
    status: Mapped[str] = mapped_column(String(10), server_default="counted")

    __table_args__ = (
        Index("ix_events_branch_day", "branch_id", "local_day"),
        Index("ix_events_deal", "deal_id"),
        Index("ix_events_agent_seq", "branch_id", "agent_id", "seq"),
    )


class AgentStream(db.Model):
    """What HQ knows of one agent's stream: highest seq, last push, failed pushes."""

    __tablename__ = "agent_streams"

    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    agent_version: Mapped[str] = mapped_column(String(50), default="")
    max_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    events_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    pushes: Mapped[int] = mapped_column(BigInteger, default=0)  # every push that reached ingest
    last_push_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Refused with an error, or answered with every event rejected (those are in ``pushes`` too).
    failed_pushes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_code: Mapped[str | None] = mapped_column(String(40))


class SeqGap(db.Model):
    """A range of an agent's seq numbers HQ has not received (yet)."""

    __tablename__ = "seq_gaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    agent_id: Mapped[str] = mapped_column(String(100))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_seq_gaps_agent", "branch_id", "agent_id"),)


class PushFailure(db.Model):
    """One failed push of an agent: refused with an HTTP error, or every event rejected.

    Append-only, each row in a transaction of its own once the push's has ended
    (rolled back on an error), so the failure outlives the push.
    ``http_status`` is 200 when the push was answered but every event was rejected;
    ``code`` is then the most frequent rejection code.
    """

    __tablename__ = "push_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    agent_id: Mapped[str] = mapped_column(String(100))  # "" when the body could not be read
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    http_status: Mapped[int] = mapped_column(SmallInteger)
    code: Mapped[str] = mapped_column(String(40))
    events: Mapped[int | None] = mapped_column(Integer)  # None when the body could not be read

    __table_args__ = (Index("ix_push_failures_branch_at", "branch_id", "at"),)


class PushCount(db.Model):
    """How many pushes of a branch reached ingest and were committed, per UTC hour."""

    __tablename__ = "push_counts"

    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    pushes: Mapped[int] = mapped_column(Integer)
