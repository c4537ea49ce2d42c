"""Web accounts: sign-in with lockout, passwords, roles and scopes; the caller commits.

Passwords are kept as werkzeug hashes (scrypt, salted) and checked in constant
time. An unknown name costs the same hash check as a known one, so the answer
time does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from hq_server.extensions import db
from hq_server.models import OrgUnit, User
from hq_server.models.auth import ROLES
from hq_server.services.auth import check_profile
from hq_server.services.org import active_unit

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
_DUMMY_HASH = generate_password_hash("an unknown user never matches this")


class AccountError(ValueError):
    """An account change that cannot be made; ``code`` names why (pages translate it)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: ``ok``, ``invalid`` or ``locked``."""

    status: str
    user: User | None = None
    locked_until: datetime | None = None


def authenticate(username: str, password: str, now: datetime | None = None) -> SignIn:
    """Check a name and password; count failures and lock the account after too many."""
    now = now or datetime.now(UTC)
    user = db.session.scalar(
        select(User).where(User.username == username.strip()).with_for_update()
    )
    if user is None or not user.active or not user.password_hash:
        check_password_hash(_DUMMY_HASH, password)
        return SignIn("invalid")
    if user.locked_until is not None and user.locked_until > now:
        check_password_hash(_DUMMY_HASH, password)
        return SignIn("locked", locked_until=user.locked_until)
    if check_password_hash(user.password_hash, password):
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        return SignIn("ok", user)
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.failed_logins, user.locked_until = 0, now + LOCKOUT
        return SignIn("locked", locked_until=user.locked_until)
    return SignIn("invalid")


def check_new_password(password: str, username: str = "") -> None:
    """Refuse a password that is too short or is the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            "too_short", f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if username and password.strip().lower() == username.lower():
        raise AccountError("is_username", "a password must not be the user name")


def set_password(user: User, password: str, now: datetime | None = None) -> None:
    """Store a new password hash; every other session of the user ends with it."""
    check_new_password(password, user.username)
    user.password_hash = generate_password_hash(password)
    user.password_changed_at = now or datetime.now(UTC)
    user.failed_logins, user.locked_until = 0, None


def change_password(user: User, current: str, new: str) -> None:
    """Change a user's own password after checking the current one."""
    if not user.password_hash or not check_password_hash(user.password_hash, current):
        raise AccountError("wrong_current", "the current password is not right")
    set_password(user, new)


def session_stamp(user: User, secret: str) -> str:
    """Return a value that changes when the user's password does (kept in the session)."""
    message = f"{user.id}:{user.password_hash or ''}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def stamp_matches(user: User, secret: str, stamp: str) -> bool:
    """Tell, in constant time, whether a session's stamp is the user's current one."""
    return hmac.compare_digest(session_stamp(user, secret), stamp or "")


def find_user(username: str) -> User | None:
    """Return the user named ``username``."""
    return db.session.scalar(select(User).where(User.username == username))


def list_users() -> list[User]:
    """Return every user, by name."""
    return list(db.session.scalars(select(User).order_by(User.username)))


def update_user(
    user: User, *, role: str, scope_code: str, display_name: str, email: str | None, active: bool
) -> None:
    """Change a user's role, scope, name, e-mail and whether they may sign in."""
    if role not in ROLES:
        raise AccountError("bad_role", f"role must be one of {', '.join(ROLES)}")
    unit = active_unit(scope_code)
    if unit is None:
        raise AccountError("bad_scope", f"no active org unit with code {scope_code!r}")
    display_name, email = display_name.strip(), (email or "").strip() or None
    check_profile(display_name, email)  # ProfileError, with a code as AccountError has
    user.role, user.scope_unit_id = role, unit.id
    user.display_name = display_name or user.username
    user.email = email
    user.active = active


def deactivate(user: User) -> None:
    """Stop a user from signing in; their sessions end at their next request."""
    user.active = False


def unlock(user: User) -> None:
    """Lift a lockout before it runs out."""
    user.failed_logins, user.locked_until = 0, None


def scope_choices() -> list[tuple[str, str, str]]:
    """Return (code, name, kind) of every active unit, HQ first, for a scope picker."""
    rows = db.session.execute(
        select(OrgUnit.code, OrgUnit.name, OrgUnit.kind)
        .where(OrgUnit.active_to.is_(None))
        .order_by(OrgUnit.level, OrgUnit.code)
    )
    return [tuple(r) for r in rows]
