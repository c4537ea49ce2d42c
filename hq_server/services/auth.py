"""Issue and check bearer tokens and users; secrets are kept only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.security import generate_password_hash

from hq_server.extensions import db
from hq_server.models import ApiToken, User
from hq_server.models.auth import ROLES
from hq_server.services.org import active_unit

AGENT_PREFIX = "hqa_"
USER_PREFIX = "hqu_"


class AuthError(ValueError):
    """A token or user request that cannot be honoured."""


def hash_token(token: str) -> bytes:
    """Return the SHA-256 of a token (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).digest()


def issue_agent_token(branch_code: str, label: str = "") -> str:
    """Create a token naming one branch; return it (shown once, never stored)."""
    branch = active_unit(branch_code)
    if branch is None or branch.kind != "branch":
        raise AuthError(f"no active branch with code {branch_code!r}")
    token = AGENT_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            token_hash=hash_token(token),
            kind="agent",
            branch_id=branch.id,
            label=label or f"agent {branch_code}",
        )
    )
    return token


def add_user(
    username: str,
    role: str,
    scope_code: str,
    display_name: str = "",
    password: str | None = None,
    email: str | None = None,
) -> User:
    """Create a user with a role and a scope unit."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    unit = active_unit(scope_code)
    if unit is None:
        raise AuthError(f"no active org unit with code {scope_code!r}")
    if db.session.scalar(select(User).where(User.username == username)):
        raise AuthError(f"user {username!r} exists already")
    user = User(
        email=email,
        username=username,
        role=role,
        scope_unit_id=unit.id,
        display_name=display_name or username,
        password_hash=generate_password_hash(password) if password else None,
    )
    db.session.add(user)
    db.session.flush()
    return user


def issue_user_token(user: User, label: str = "") -> str:
    """Create a programmatic-access token for ``user``; return it (shown once)."""
    token = USER_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            token_hash=hash_token(token),
            kind="user",
            user_id=user.id,
            label=label or f"user {user.username}",
        )
    )
    return token


def find_token(token: str) -> ApiToken | None:
    """Return the live token record matching ``token``, comparing in constant time."""
    if not token.startswith((AGENT_PREFIX, USER_PREFIX)) or len(token) > 200:
        return None
    digest = hash_token(token)
    record = db.session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
        # What the principal is built from, in the same read (every API request does this).
        .options(joinedload(ApiToken.branch), joinedload(ApiToken.user))
    )
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        return None
    if record.kind == "user" and (record.user is None or not record.user.active):
        return None
    return record
