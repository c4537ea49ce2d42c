"""Ingest throughput with the default playbook vs an empty one, in the same run.

Pushes the same kind of event stream through the real push path (Flask app,
marshmallow, PostgreSQL, the rule engine) in alternating rounds: a published
playbook without rules, then the default playbook; tables are emptied before
each round so both see the same database size. Prints events/s for both and
the ratio (target >= 0.8), then condition evaluations per second.

    ./dev bench playbook_ingest [--events 20000] [--rounds 3]

The database named by --database-url (default postgresql:///hq_bench_playbook)
is DROPPED and recreated.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT = (ROOT / "config" / "playbook.default.yaml").read_text()
EMPTY = DEFAULT.split("\nrules:")[0] + "\nrules: []\n"
ROWS = [
    {
        "region_code": "BENCH",
        "region_name": "Bench",
        "branch_code": "B1",
        "branch_name": "Bench branch",
        "rep_code": f"B1-{i}",
        "rep_name": f"Rep {i}",
    }
    for i in range(1, 5)
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_stream(count: int, start: datetime) -> list[dict]:
    """Deals that open, get visits and quotes (some without a DM visit), and close."""
    events, seq, at = [], 0, start
    while len(events) < count:
        deal = str(uuid.uuid4())
        rep = f"B1-{1 + len(events) % 4}"
        steps = [
            ("deal.opened", {"name": "d", "amount": 50000, "currency": "CNY"}),
            ("call.logged", {"connected": True}),
            ("visit.logged", {"decision_maker_met": seq % 3 != 0}),
            ("quote.issued", {"amount": 48000, "currency": "CNY", "discount_pct": 5}),
            ("deal.won", {"amount": 48000})
            if seq % 2
            else (
                "deal.lost",
                {"loss_reason": "price", "competitor": {"name": "R", "product": "X", "price": 1}},
            ),
        ]
        for kind, data in steps:
            seq += 1
            at += timedelta(seconds=30)
            events.append(
                {
                    "id": str(uuid.uuid4()),
                    "seq": seq,
                    "type": kind,
                    "rep": rep,
                    "occurred_at": at.isoformat(),
                    "deal": deal,
                    "data": data,
                }
            )
    return events[:count]


def setup(database_url: str):
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    admin = libpq.rsplit("/", 1)[0] + "/postgres"
    name = libpq.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    from config.settings import Settings
    from hq_server import create_app
    from hq_server.cli import upgrade_database
    from hq_server.extensions import db
    from hq_server.services.auth import issue_agent_token
    from hq_server.services.org import import_org

    app = create_app(
        Settings.from_env(
            {"DATABASE_URL": libpq, "REDIS_URL": "redis://127.0.0.1:6379/0", "LOG_LEVEL": "WARNING"}
        )
    )
    upgrade_database(app)
    with app.app_context():
        import_org(ROWS, "Asia/Shanghai")
        db.session.flush()
        token = issue_agent_token("B1")
        db.session.commit()
    return app, token


def round_(app, token: str, source: str, version: int, events: list[dict], batch: int) -> float:
    """Empty the tables, publish ``source`` as ``version``, push ``events``; return events/s."""
    from sqlalchemy import text

    from hq_server.extensions import db
    from hq_server.services import playbooks

    with app.app_context():
        db.session.execute(
            text(
                "TRUNCATE events, deals, daily_rollups, violations, approvals, "
                "seq_gaps, agent_streams, playbooks"
            )
        )
        playbooks.forget_compiled()
        playbooks.publish(source.replace("version: 1", f"version: {version}", 1), "bench")
        db.session.execute(text("UPDATE playbooks SET published_at = '2026-01-01T00:00:00Z'"))
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [
        orjson.dumps({"agent": {"id": "bench", "version": "1"}, "events": events[i : i + batch]})
        for i in range(0, len(events), batch)
    ]
    started = time.perf_counter()
    for body in bodies:
        resp = client.post("/api/v1/sync/push", data=body, headers=headers)
        counts = resp.get_json()["counts"]
        if resp.status_code != 200 or counts["rejected"]:
            raise SystemExit(f"push failed: {resp.status_code} {counts}")
    return len(events) / (time.perf_counter() - started)


def evals_per_second(seconds: float = 1.0) -> float:
    from shared.playbook import compile_expression

    test = compile_expression("data.discount_pct > 15")
    event = {"type": "quote.issued", "data": {"discount_pct": 10, "amount": 100}}
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10000):
            test(event)
        n += 10000
    return n / (time.perf_counter() - started)


@click.command()
@click.option("--events", default=20000, show_default=True, help="events per round")
@click.option("--rounds", default=3, show_default=True, help="rounds per playbook (median)")
@click.option("--batch", default=500, show_default=True)
@click.option(
    "--database-url",
    default="postgresql:///hq_bench_playbook",
    show_default=True,
    help="DROPPED and recreated",
)
def main(events: int, rounds: int, batch: int, database_url: str) -> None:
    """Measure the playbook's cost on ingest."""
    app, token = setup(database_url)
    stream = make_stream(events, datetime(2026, 11, 2, tzinfo=UTC))
    empty, full, version = [], [], 0
    for r in range(rounds):
        for name, source, results in (("empty", EMPTY, empty), ("default", DEFAULT, full)):
            version += 1
            rate = round_(app, token, source, version, stream, batch)
            results.append(rate)
            log(f"round {r + 1} {name:>7}: {rate:,.0f} events/s")
    evals = evals_per_second()
    base, with_rules = statistics.median(empty), statistics.median(full)
    ratio = with_rules / base
    print(f"ingest events/s, empty playbook (median of {rounds}): {base:,.0f}")
    print(f"ingest events/s, default playbook (median of {rounds}): {with_rules:,.0f}")
    print(f"ratio {ratio:.2f} (target >= 0.8); condition evaluations/s {evals:,.0f}")
    print(f"RESULT evals_per_s={evals:.0f} ingest_ratio_playbook={ratio:.2f}")


if __name__ == "__main__":
    main()
