"""Users and API tokens (agents' and users'); secrets are stored hashed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hq_server.extensions import db
from hq_server.models.org import OrgUnit

ROLES = ("staff", "branch_manager", "region_manager", "hq_manager", "finance", "admin")


class User(db.Model):
    """A person with a role and a scope (an org unit: they see its subtree)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(32))
    scope_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    scope_unit: Mapped[OrgUnit] = relationship()


class ApiToken(db.Model):
    """A bearer token: an agent's (names one branch) or a user's programmatic access."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "agent" or "user"
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    branch: Mapped[OrgUnit | None] = relationship()
    user: Mapped[User | None] = relationship()
