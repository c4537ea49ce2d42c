"""Run the app under gunicorn, and the ``wsgi:app`` entry point for a gunicorn command line."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self.application, self.options = app, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def run_gunicorn(app, bind: str, workers: int) -> None:
    """Serve ``app`` with gunicorn's sync workers, forked from this process."""
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

        return create_app()
    raise AttributeError(name)
