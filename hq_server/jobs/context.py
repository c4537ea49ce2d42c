"""Give job functions an app context, one app per worker process."""

from __future__ import annotations

import os
from contextlib import contextmanager

_app = None
_pid = None


@contextmanager
def app_context():
    """Enter an app context built once per process (a fork gets its own engine)."""
    global _app, _pid
    from hq_server import create_app
    from hq_server.extensions import db

    if _app is None:
        _app = create_app()
        _pid = os.getpid()
    with _app.app_context():
        if _pid != os.getpid():
            # Inherited pool connections belong to the parent; never share them.
            db.engine.dispose(close=False)
            _pid = os.getpid()
        yield _app
