"""Run the app under gunicorn, and the ``wsgi:app`` entry point for a gunicorn command line."""

from __future__ import annotations

import gc

from gunicorn.app.base import BaseApplication

# A push of 500 events allocates a few hundred thousand short-lived objects: at
# Python's default (a young collection every 700 allocations, a full one every
# 100 young ones, each walking every live object) that was about a tenth of a push.
GC_THRESHOLDS = (50_000, 20, 20)


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self.application, self.options = app, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def settle_gc() -> None:
    """Keep what the built app holds out of the collector's walks; collect less often.

    The app's objects (modules, schemas, the engine) live as long as the process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_gunicorn(app, bind: str, workers: int) -> None:
    """Serve ``app`` with gunicorn's threaded workers, forked from this process."""
    settle_gc()  # before the workers fork from this process
    _Gunicorn(
        app,
        {
            "bind": bind,
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 60,
            "graceful_timeout": 30,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        },
    ).run()


def __getattr__(name: str):
    # ``gunicorn hq_server.wsgi:app`` builds the app when gunicorn asks for it.
    if name == "app":
        from hq_server import create_app

        app = create_app()
        settle_gc()
        return app
    raise AttributeError(name)
