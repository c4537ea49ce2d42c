"""Give job functions an app context: the current one, or one app per worker process."""

from __future__ import annotations

import os
from contextlib import contextmanager

_app = None


@contextmanager
def app_context():
    """Enter the app context jobs run in; a forked work horse gets fresh connections."""
    global _app
    from flask import current_app, has_app_context

    from hq_server.extensions import db

    if has_app_context():
        app = current_app._get_current_object()
        _fresh_pool_after_fork(app, db)
        yield app
        return
    if _app is None:
        from hq_server import create_app

        _app = create_app()
    with _app.app_context():
        _fresh_pool_after_fork(_app, db)
        yield _app


def _fresh_pool_after_fork(app, db) -> None:
    # Pool connections inherited from the parent process must never be used here.
    pid = os.getpid()
    if app.extensions.setdefault("hq_pool_pid", pid) != pid:
        db.engine.dispose(close=False)
        app.extensions["hq_pool_pid"] = pid
