"""Users and roles, managed by administrators."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from hq_server.extensions import db
from hq_server.models import User
from hq_server.models.auth import ROLES
from hq_server.services.auth import USERNAME, AuthError, ProfileError, add_user
from hq_server.web import accounts
from hq_server.web.auth import account_message
from hq_server.web.security import roles_required

bp = Blueprint("admin", __name__)
ADMINS = ("admin",)


def _render(error: str | None = None, form: dict | None = None, status: int = 200):
    return render_template(
        "console/users.html",
        users=accounts.list_users(),
        roles=ROLES,
        scopes=accounts.scope_choices(),
        error=error,
        form=form or {},
    ), status


@bp.get("/admin/users")
@roles_required(*ADMINS)
def users():
    """List every user with role, scope and sign-in state; add one."""
    return _render()


@bp.post("/admin/users")
@roles_required(*ADMINS)
def create_user():
    """Create a user who signs in with a password."""
    form = {k: request.form.get(k, "").strip() for k in ("username", "name", "role", "scope")}
    form["email"] = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not USERNAME.fullmatch(form["username"]):
        return _render(gettext("A user name has 2 to 100 letters, digits or . _ @ -."), form, 422)
    if accounts.find_user(form["username"]) is not None:
        return _render(gettext("This user name is taken."), form, 422)
    try:
        accounts.check_new_password(password, form["username"])
        add_user(
            form["username"],
            form["role"],
            form["scope"],
            form["name"],
            email=form["email"] or None,
        )
        user = accounts.find_user(form["username"])
        accounts.set_password(user, password)
    except (accounts.AccountError, ProfileError) as exc:
        db.session.rollback()
        return _render(account_message(exc), form, 422)
    except AuthError:
        db.session.rollback()
        return _render(
            gettext("Choose one of the roles and an active unit as the scope."), form, 422
        )
    db.session.commit()
    flash(gettext("User %(name)s was created.", name=form["username"]), "ok")
    return redirect(url_for("console.admin.users"))


@bp.post("/admin/users/<int:user_id>")
@roles_required(*ADMINS)
def update_user(user_id: int):
    """Change a user's role, scope, name, e-mail, state; reset a password; lift a lock."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    try:
        action = request.form.get("action", "save")
        if action == "unlock":
            accounts.unlock(user)
        elif action == "password":
            accounts.set_password(user, request.form.get("password", ""))
        elif user.id == g.user.id and (
            request.form.get("role") != "admin" or request.form.get("active") != "on"
        ):
            return _render(
                gettext("You cannot take away your own administrator access."), None, 422
            )
        else:
            accounts.update_user(
                user,
                role=request.form.get("role", ""),
                scope_code=request.form.get("scope", ""),
                display_name=request.form.get("name", ""),
                email=request.form.get("email"),
                active=request.form.get("active") == "on",
            )
    except (accounts.AccountError, ProfileError) as exc:
        db.session.rollback()
        return _render(account_message(exc), status=422)
    db.session.commit()
    flash(gettext("User %(name)s was saved.", name=user.username), "ok")
    return redirect(url_for("console.admin.users"))
