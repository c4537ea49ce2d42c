"""Issue and check bearer tokens and users; secrets are kept only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from hq_server.extensions import db
from hq_server.models import ApiToken, User
from hq_server.models.auth import ROLES
from hq_server.services.org import active_unit
from hq_server.services.rows import execute_plain
from hq_server.services.scope import Principal

AGENT_PREFIX = "hqa_"
USER_PREFIX = "hqu_"


# What a user name may be: it signs in, shows on pages and goes into logs as typed.
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{1,99}")
MAX_DISPLAY_NAME = 200  # the columns' lengths
MAX_EMAIL = 254
EMAIL = re.compile(r"[^@\s\x00]+@[^@\s\x00]+")  # as lenient as a browser: ops@intranet


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


class ProfileError(AuthError):
    """A display name or e-mail address a user cannot have; ``code`` says which."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_profile(display_name: str, email: str | None) -> None:
    """Refuse a display name or e-mail address that cannot be stored or used."""
    if len(display_name) > MAX_DISPLAY_NAME or "\x00" in display_name:
        raise ProfileError("bad_name", f"a name has at most {MAX_DISPLAY_NAME} characters")
    if email is not None and (len(email) > MAX_EMAIL or not EMAIL.fullmatch(email)):
        raise ProfileError("bad_email", "an e-mail address is written like name@example.com")


def add_user(
    username: str,
    role: str,
    scope_code: str,
    display_name: str = "",
    password: str | None = None,
    email: str | None = None,
) -> User:
    """Create a user with a role and a scope unit."""
    if not USERNAME.fullmatch(username):
        raise AuthError(
            "a user name has 2 to 100 letters, digits or . _ @ -, starting with a letter or digit"
        )
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    check_profile(display_name, email)
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


# Who a live token stands for, in one plain statement on the driver: every API request runs it.
_TOKEN = (
    "SELECT t.id, t.token_hash, t.kind, t.branch_id, b.code, u.id, u.role, u.active, s.code "
    "FROM api_tokens t LEFT JOIN org_units b ON b.id = t.branch_id "
    "LEFT JOIN users u ON u.id = t.user_id LEFT JOIN org_units s ON s.id = u.scope_unit_id "
    "WHERE t.token_hash = %(h)s AND t.revoked_at IS NULL"
)


def find_principal(token: str) -> Principal | None:
    """Return who the live token ``token`` stands for, comparing its hash in constant time."""
    if not token.startswith((AGENT_PREFIX, USER_PREFIX)) or len(token) > 200:
        return None
    digest = hash_token(token)
    rows = execute_plain(db.session.connection(), _TOKEN, {"h": digest})
    if not rows or not hmac.compare_digest(bytes(rows[0][1]), digest):
        return None
    token_id, _, kind, branch_id, branch_code, user_id, role, active, scope_code = rows[0]
    if kind == "agent":
        return Principal("agent", "agent", branch_code, branch_id=branch_id, token_id=token_id)
    if user_id is None or not active:
        return None
    return Principal("user", role, scope_code, user_id=user_id, token_id=token_id)
