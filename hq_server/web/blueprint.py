"""The console blueprint under ``/console``: one child blueprint per area.

Children are attached once, at import, so any number of apps can register it.
"""

from __future__ import annotations

from flask import Blueprint

from hq_server.web import (
    admin,
    auth,
    drill,
    finance,
    i18n,
    inbox,
    playbook,
    security,
    templating,
    units,
)

console = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
for child in (
    auth.bp,
    i18n.bp,
    units.bp,
    drill.bp,
    finance.bp,
    playbook.bp,
    inbox.bp,
    admin.bp,
):
    console.register_blueprint(child)
security.register(console)
templating.register(console)
