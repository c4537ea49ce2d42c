"""Finance's pipeline reads, live and as-of, against a replay of the raw events.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/pipeline.py --reuse     # on the report benchmark's database
    .venv/bin/python bench/pipeline.py             # load it first (10M events, ~30 minutes)
    .venv/bin/python bench/pipeline.py --events 500000 --branches-per-region 10  # small

The company is the report benchmark's (``bench/reports.py``: 1,000 branches, 10,000 reps,
10 million events over a year, loaded with COPY). Unless ``--reuse``, the database is
dropped, migrated and loaded; then the pipeline history is rebuilt from the events with
``hq-server pipeline backfill`` (what an upgraded installation runs once) and the midnight
cuts are taken. With ``--reuse`` an existing history is kept (``--backfill`` redoes it).

Then, for HQ, one region and one branch:

1. ``GET /api/v1/pipeline?unit=…`` (live), in process with Flask's test client;
2. ``GET /api/v1/pipeline?unit=…&at=T`` for moments T drawn over the last ``--days-back``
   days (a new moment per request);
3. baseline: the same figures by a replay in plain SQL — every counted event HQ had stored
   by T, folded per deal (last writer by occurred time), weighted per deal, summed — with
   psycopg; the figures must agree (a mismatch fails the run).

Progress goes to stderr; the table and the ``RESULT`` line (last) go to stdout.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import click
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reports import (  # noqa: E402
    create_org,
    load_company,
    log,
    make_app,
    org_units,
    percentile,
    user_token,
)

from shared.stages import DEFAULT_STAGES  # noqa: E402

_SETTERS = "('deal.opened', 'lead.created', 'deal.stage_changed', 'deal.won', 'deal.lost')"
_LAST = "ORDER BY occurred_at DESC, id DESC"
NAIVE = f"""
WITH ev AS (
  SELECT e.deal_id, e.type, e.occurred_at, e.id, e.payload->'data' AS d
  FROM events e
  WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted' AND e.deal_id IS NOT NULL
    AND e.received_at <= %(t)s
), deal AS (
  SELECT deal_id,
    (array_agg(CASE type WHEN 'deal.opened' THEN coalesce(d->>'stage', 'lead')
                         WHEN 'lead.created' THEN 'lead'
                         WHEN 'deal.stage_changed' THEN d->>'to'
                         ELSE split_part(type, '.', 2) END {_LAST})
       FILTER (WHERE type IN {_SETTERS}))[1] AS stage,
    (array_agg(CAST(d->>'amount' AS numeric) {_LAST})
       FILTER (WHERE type IN ('deal.opened', 'deal.updated', 'deal.won') AND d ? 'amount'))[1]
       AS amount
  FROM ev GROUP BY deal_id
)
SELECT count(*) FILTER (WHERE coalesce(deal.stage, 'lead') NOT IN ('won', 'lost')),
       coalesce(sum(amount) FILTER (WHERE coalesce(deal.stage, 'lead') NOT IN ('won', 'lost')), 0),
       coalesce(sum(round(coalesce(amount, 0) * p.prob, 2))
                FILTER (WHERE coalesce(deal.stage, 'lead') NOT IN ('won', 'lost')), 0),
       count(*) FILTER (WHERE deal.stage = 'won'),
       coalesce(sum(amount) FILTER (WHERE deal.stage = 'won'), 0)
FROM deal
JOIN unnest(%(names)s::text[], %(probs)s::numeric[]) AS p(stage, prob)
  ON p.stage = coalesce(deal.stage, 'lead')
"""


def naive(conn, branches: list[int], at: datetime) -> dict:
    """Return the pipeline figures at ``at`` replayed from the raw events in plain SQL."""
    row = conn.execute(
        NAIVE,
        {
            "b": branches,
            "t": at,
            "names": [s.name for s in DEFAULT_STAGES],
            "probs": [Decimal(str(s.probability)) for s in DEFAULT_STAGES],
        },
    ).fetchone()
    return {
        "open_count": row[0],
        "open_amount": Decimal(row[1]),
        "weighted": Decimal(row[2]),
        "won_count": row[3],
        "won_amount": Decimal(row[4]),
    }


def figures(body: dict) -> dict:
    return {
        "open_count": body["open"]["count"],
        "open_amount": Decimal(body["open"]["amount"]),
        "weighted": Decimal(body["open"]["weighted"]),
        "won_count": body["won"]["count"],
        "won_amount": Decimal(body["won"]["amount"]),
    }


def backfill(app) -> dict:
    """Rebuild the pipeline history from the events and take the cuts; return timings."""
    from hq_server.extensions import db
    from hq_server.services.pipeline_history import backfill as rebuild
    from hq_server.services.pipeline_history import snapshot_pipeline

    timings = {}
    with app.app_context():
        started = time.monotonic()
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if done[0] % 500_000 == 0:
                log(f"  {done[0]:,} deal events replayed")

        rows = rebuild(progress=tick)
        db.session.commit()
        timings["backfill_s"] = time.monotonic() - started
        log(
            f"history: {rows:,} change rows from {done[0]:,} events in {timings['backfill_s']:.0f}s"
        )
        started = time.monotonic()
        cuts = snapshot_pipeline()
        timings["cuts_s"] = time.monotonic() - started
        log(f"cuts: {cuts['cuts']} taken, {cuts['rows']:,} rows in {timings['cuts_s']:.0f}s")
        db.session.execute(db.text("ANALYZE pipeline_changes"))
        db.session.execute(db.text("ANALYZE pipeline_snapshots"))
        db.session.commit()
    return timings


def cuts(app) -> dict:
    """Take the due cuts (none after a migration dropped them: all of them again)."""
    from hq_server.extensions import db
    from hq_server.services.pipeline_history import snapshot_pipeline

    with app.app_context():
        started = time.monotonic()
        taken = snapshot_pipeline()
        db.session.execute(db.text("ANALYZE pipeline_snapshots"))
        db.session.commit()
    seconds = time.monotonic() - started
    log(f"cuts: {taken['cuts']} taken, {taken['rows']:,} rows in {seconds:.0f}s")
    return {"cuts_s": seconds}


def moments(rng: random.Random, newest: datetime, days_back: int, n: int) -> list[datetime]:
    return [newest - timedelta(seconds=rng.uniform(0, days_back * 86400)) for _ in range(n)]


def measure(app, dsn: str, opts: dict) -> list[dict]:
    units, _ = org_units(dsn)
    region = opts["region"] or min(c for c, u in units.items() if u["kind"] == "region")
    branch = min(
        c
        for c, u in units.items()
        if u["kind"] == "branch" and u["path"].startswith(units[region]["path"])
    )
    headers = {"Authorization": f"Bearer {user_token(app)}"}
    client = app.test_client()
    rng = random.Random(opts["seed"])
    with psycopg.connect(dsn) as conn:
        newest = conn.execute("SELECT max(received_at) FROM events").fetchone()[0]
    results = []
    repeats = {
        "HQ": opts["naive_repeats_hq"],
        region: opts["naive_repeats"],
        branch: opts["naive_repeats"] * 2,
    }
    with psycopg.connect(dsn) as conn:
        conn.execute("SET jit = off")
        for unit in ("HQ", region, branch):
            branches = units[unit]["branches"]
            url = f"/api/v1/pipeline?unit={unit}"
            for _ in range(opts["warmups"]):
                client.get(url, headers=headers)
            live, body = [], None
            for _ in range(opts["repeats"]):
                started = time.perf_counter()
                resp = client.get(url, headers=headers)
                live.append(time.perf_counter() - started)
                if resp.status_code != 200:
                    raise click.ClickException(f"GET {url}: {resp.status_code}")
                body = resp.get_json()
            # The live read and the replay at (after) the newest event must agree.
            diffs = compare(figures(body), naive(conn, branches, newest + timedelta(seconds=1)))
            asof, checked = [], []
            for i, at in enumerate(
                moments(rng, newest, opts["days_back"], opts["warmups"] + opts["repeats"])
            ):
                q = f"{url}&at={at.isoformat().replace('+', '%2B')}"
                started = time.perf_counter()
                resp = client.get(q, headers=headers)
                elapsed = time.perf_counter() - started
                if resp.status_code != 200:
                    raise click.ClickException(f"GET {q}: {resp.status_code} {resp.get_data()}")
                if i >= opts["warmups"]:
                    asof.append(elapsed)
                    checked.append((at, figures(resp.get_json())))
            naive_times = []
            for at, got in checked[: repeats[unit]]:
                started = time.perf_counter()
                want = naive(conn, branches, at)
                naive_times.append(time.perf_counter() - started)
                diffs += compare(got, want)
            log(
                f"{unit}: live p95 {percentile(live, 0.95) * 1000:.1f} ms, as-of p95 "
                f"{percentile(asof, 0.95) * 1000:.1f} ms, replay median "
                f"{statistics.median(naive_times) * 1000:.0f} ms ({len(naive_times)} runs), "
                f"{len(diffs)} differences"
            )
            results.append(
                {
                    "unit": unit,
                    "branches": len(branches),
                    "live": live,
                    "asof": asof,
                    "naive": naive_times,
                    "diffs": diffs,
                    "open": body["open"]["count"],
                }
            )
    return results


def compare(got: dict, want: dict) -> list[str]:
    return [f"{k}: api {got[k]} != replay {want[k]}" for k in want if got[k] != want[k]]


def report(load: dict, results: list[dict], size: str, events: int, history: int) -> None:
    print(f"\npipeline reads over {events:,} events ({size}), {history:,} history rows")
    for key, value in load.items():
        print(f"  load {key}: {value:.0f}" if isinstance(value, float) else f"  {key}: {value}")
    print(
        f"{'unit':<8} {'branches':>8} {'open':>8} {'live p50':>9} {'live p95':>9} "
        f"{'as-of p50':>10} {'as-of p95':>10} {'replay p50':>11} {'replay p95':>11} {'ratio':>7}"
    )
    for r in results:
        n95, a95 = percentile(r["naive"], 0.95), percentile(r["asof"], 0.95)
        print(
            f"{r['unit']:<8} {r['branches']:>8} {r['open']:>8} "
            f"{percentile(r['live'], 0.5) * 1000:>7.1f}ms "
            f"{percentile(r['live'], 0.95) * 1000:>7.1f}ms "
            f"{percentile(r['asof'], 0.5) * 1000:>8.1f}ms {a95 * 1000:>8.1f}ms "
            f"{percentile(r['naive'], 0.5) * 1000:>9.0f}ms {n95 * 1000:>9.0f}ms {n95 / a95:>6.0f}x"
        )


@click.command()
@click.option("--reuse", is_flag=True, help="keep the database as it is (no load)")
@click.option(
    "--backfill/--no-backfill",
    "do_backfill",
    default=None,
    help="rebuild the history (default: when loading, or when it is empty)",
)
@click.option("--events", default=10_000_000, show_default=True)
@click.option("--regions", default=10, show_default=True)
@click.option("--branches-per-region", default=100, show_default=True)
@click.option("--reps-per-branch", default=10, show_default=True)
@click.option("--days", default=365, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--jobs", default=2, show_default=True)
@click.option("--region", default=None, help="region to read (default: the first)")
@click.option("--warmups", default=3, show_default=True)
@click.option("--repeats", default=30, show_default=True, help="timed requests per read")
@click.option("--days-back", default=60, show_default=True, help="as-of moments drawn from")
@click.option("--naive-repeats", default=3, show_default=True, help="replays (branch: twice)")
@click.option("--naive-repeats-hq", default=2, show_default=True, help="replays for HQ")
@click.option("--database-url", default="postgresql:///hq_bench_reports", show_default=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
def main(**opts) -> None:
    """Benchmark live and as-of pipeline reads against a replay of the events."""
    from ingest import hq, recreate_database

    dsn = opts["database_url"]
    instance = Path(tempfile.mkdtemp(prefix="hq-bench-pipeline-"))
    env = dict(
        os.environ,
        DATABASE_URL=dsn,
        REDIS_URL=opts["redis_url"],
        HQ_INSTANCE_DIR=str(instance),
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="WARNING",
    )
    load: dict = {}
    if not opts["reuse"]:
        log(f"recreating database {dsn}")
        recreate_database(dsn)
        hq(env, "db", "upgrade")
        branches = create_org(
            dsn, opts["regions"], opts["branches_per_region"], opts["reps_per_branch"]
        )
        load.update(load_company(dsn, branches, {**opts, "verify_branch": None}))
    else:
        hq(env, "db", "upgrade")
    app = make_app(dsn, opts["redis_url"], instance)
    with psycopg.connect(dsn) as conn:
        history = conn.execute("SELECT count(*) FROM pipeline_changes").fetchone()[0]
    if opts["do_backfill"] or (opts["do_backfill"] is None and (not opts["reuse"] or not history)):
        load.update(backfill(app))
    else:
        load.update(cuts(app))
    results = measure(app, dsn, opts)
    with psycopg.connect(dsn) as conn:
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        history = conn.execute("SELECT count(*) FROM pipeline_changes").fetchone()[0]
    shutil.rmtree(instance, ignore_errors=True)
    report(load, results, size, events, history)
    failed = [r for r in results if r["diffs"]]
    if failed:
        raise click.ClickException(
            "figures disagree with the replay: "
            + "; ".join(f"{r['unit']}: {r['diffs'][0]}" for r in failed)
        )
    live = max(percentile(r["live"], 0.95) for r in results)
    asof = max(percentile(r["asof"], 0.95) for r in results)
    replay = max(percentile(r["naive"], 0.95) for r in results)
    print(
        f"RESULT pipeline_p95_ms={live * 1000:.1f} asof_p95_ms={asof * 1000:.1f} "
        f"naive_asof_p95_ms={replay * 1000:.1f} speedup={replay / asof:.1f} events={events}"
    )


if __name__ == "__main__":
    main()
