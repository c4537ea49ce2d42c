"""Production gunicorn settings: gunicorn -c config/gunicorn.conf.py 'hq_server.wsgi:app'"""

from config.settings import Settings

_settings = Settings.from_env()

bind = _settings.bind
workers = _settings.web_concurrency
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 30
preload_app = False  # each worker builds its own app and connection pool
accesslog = "-"
