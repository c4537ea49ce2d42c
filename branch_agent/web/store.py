"""Open the agent's store once per request and close it when the request ends."""

from __future__ import annotations

from datetime import tzinfo

from flask import current_app, g

from branch_agent.outbox import Outbox
from branch_agent.recorder import branch_timezone


def get_outbox() -> Outbox:
    """Return this request's connection to the store, opening it on first use."""
    if "outbox" not in g:
        g.outbox = Outbox(current_app.config["DATA_DIR"])
    return g.outbox


def close_outbox(exc: BaseException | None = None) -> None:
    """Close the request's connection, if one was opened."""
    outbox = g.pop("outbox", None)
    if outbox is not None:
        outbox.close()


def get_branch_tz() -> tzinfo:
    """Return the branch's time zone, read once per request."""
    if "branch_tz" not in g:
        g.branch_tz = branch_timezone(get_outbox())
    return g.branch_tz
