"""Playbook versions, the violations they find, and the approvals they ask for."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.extensions import db


class PlaybookVersion(db.Model):
    """One published playbook; every version is kept (events are judged by theirs)."""

    __tablename__ = "playbooks"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    document: Mapped[dict] = mapped_column(JSONB)
    published_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    published_by: Mapped[str] = mapped_column(String(100))


class Violation(db.Model):
    """A rule broken by an event (or found by a timer), tracked from open to resolved.

    ``key`` makes each finding unique, so a scan or a re-sent event never opens
    the same violation twice.
    """

    __tablename__ = "violations"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    playbook_version: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(10))
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    deal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    message: Mapped[dict] = mapped_column(JSONB)
    details: Mapped[dict] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_violations_branch_status", "branch_id", "status"),
        Index("ix_violations_rule", "rule_id"),
    )


class Approval(db.Model):
    """A blocked event waiting for (or decided by) the approver its rule names."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    rule_ids: Mapped[list] = mapped_column(JSONB)
    approver_role: Mapped[str] = mapped_column(String(32))
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
