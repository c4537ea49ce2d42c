"""Ingest benchmark: HTTP pushes to ``hq-server serve`` against raw psycopg upserts.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/ingest.py                 # full run: 200k events
    .venv/bin/python bench/ingest.py --events 20000  # quick run

The script recreates the benchmark database (default ``postgresql:///hq_bench``),
migrates it, imports one branch per client (two reps each), issues one agent
token per branch and starts ``hq-server serve``. Then it measures, in order:

1. baseline: the same event rows written into ``bench_events`` (a copy of the
   ``events`` table) by raw psycopg 3, one ``INSERT ... ON CONFLICT (id) DO
   NOTHING`` and one commit per batch, from ``--clients`` processes in parallel
   (repeated ``--repeats`` times on an emptied table; the median is reported);
2. batch pushes: every event pushed over HTTP in batches of ``--batch`` from
   ``--clients`` processes in parallel, each for its own branch;
3. single pushes: ``--single`` more pushes of one event each, spread across
   the clients.

Every push must come back with all its events accepted, or the run fails.
Progress goes to stderr; the result table and the final ``RESULT`` line go to
stdout.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import psycopg
import requests
from cpu_meter import GROUPS, CpuMeter
from psycopg import conninfo, sql

AGENT_VERSION = "bench-1.0"
BRANCH_TZ = "Asia/Shanghai"
EVENT_OFFSET = timezone(timedelta(hours=8))
HISTORY = timedelta(days=120)
OPEN_DEALS = 32  # deals an agent works on at the same time
COLUMNS = (
    "id",
    "branch_id",
    "rep_id",
    "agent_id",
    "seq",
    "type",
    "occurred_at",
    "local_day",
    "received_at",
    "deal_id",
    "customer",
    "playbook_version",
    "content_hash",
    "payload",
)
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- events


def branch_code(client: int) -> str:
    return f"BENCH{client + 1:02d}"


def rep_codes(client: int) -> list[str]:
    return [f"{branch_code(client)}.R{r + 1}" for r in range(2)]


def agent_id(client: int) -> str:
    return f"bench-agent-{client + 1:02d}"


def _deal_plan(rng: random.Random) -> list[tuple[str, dict]]:
    """The events one deal will see, in order: opened, activity, maybe a quote, an outcome."""
    amount = round(rng.uniform(5_000, 2_000_000), 2)
    plan: list[tuple[str, dict]] = [
        (
            "deal.opened",
            {"name": f"Deal {rng.randrange(10**6):06d}", "amount": amount, "currency": "CNY"},
        )
    ]
    activity = [
        ("call.logged", {"connected": rng.random() < 0.6, "duration_s": rng.randrange(20, 1800)})
        for _ in range(rng.randint(1, 4))
    ]
    activity += [
        ("visit.logged", {"decision_maker_met": rng.random() < 0.5})
        for _ in range(rng.randint(0, 2))
    ]
    rng.shuffle(activity)
    plan += activity
    if rng.random() < 0.6:
        plan.append(
            (
                "quote.issued",
                {"amount": round(amount * rng.uniform(0.8, 1.1), 2), "currency": "CNY"},
            )
        )
    outcome = rng.random()
    if outcome < 0.35:
        plan.append(("deal.won", {}))
    elif outcome < 0.75:
        plan.append(("deal.lost", {"loss_reason": rng.choice(["price", "timing", "competitor"])}))
    return plan  # the rest stay open


def generate_events(client: int, count: int, now: datetime) -> list[dict]:
    """Return ``count`` events of one agent, seq 1..count, deterministic per client.

    The agent works ~32 deals at once, interleaving their events; one event in
    ten is a call not tied to a deal. ``occurred_at`` rises from ~120 days ago
    to an hour ago.
    """
    rng = random.Random(f"hq-bench-{client}")
    reps = rep_codes(client)
    start = now - HISTORY - timedelta(hours=1)
    step = HISTORY.total_seconds() / max(count, 1)
    open_deals: list[dict] = []
    events = []
    for seq in range(1, count + 1):
        at = start + timedelta(seconds=int((seq - 1) * step + rng.random() * step * 0.9))
        event = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "seq": seq,
            "occurred_at": at.astimezone(EVENT_OFFSET).isoformat(timespec="seconds"),
        }
        if rng.random() < 0.1:
            event.update(
                type="call.logged", rep=rng.choice(reps), data={"connected": rng.random() < 0.4}
            )
        else:
            while len(open_deals) < OPEN_DEALS:
                n = rng.getrandbits(40)
                open_deals.append(
                    {
                        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "rep": rng.choice(reps),
                        "customer": f"Customer {n:010x}",
                        "plan": _deal_plan(rng),
                    }
                )
            deal = open_deals[rng.randrange(len(open_deals))]
            kind, data = deal["plan"].pop(0)
            event.update(
                type=kind, rep=deal["rep"], deal=deal["id"], customer=deal["customer"], data=data
            )
            if not deal["plan"]:
                open_deals.remove(deal)
        events.append(event)
    return events


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- HTTP clients


def _push(session: requests.Session, url: str, body: bytes, expected: int, where: str) -> dict:
    """POST one push; retry on 409; fail on anything else but 200 with all accepted."""
    for attempt in range(10):
        resp = session.post(url, data=body)
        if resp.status_code == 409 and attempt < 9:
            time.sleep(0.2)
            continue
        if resp.status_code != 200:
            raise RuntimeError(f"{where}: HTTP {resp.status_code}: {resp.text[:2000]}")
        out = resp.json()
        counts = out.get("counts", {})
        if counts.get("accepted") != expected:
            bad = [r for r in out.get("results", []) if r.get("status") != "accepted"][:3]
            raise RuntimeError(
                f"{where}: {expected} events sent, counts {counts}; "
                f"first non-accepted results: {json.dumps(bad)}"
            )
        return out
    raise AssertionError("unreachable")


def http_client(
    client: int,
    base_url: str,
    token: str,
    batch: int,
    skip: int,
    count: int,
    total: int,
    now: datetime,
    phase: str,
    barrier,
) -> dict:
    """Push events ``skip+1 .. skip+count`` of this client's stream, ``batch`` per request."""
    events = generate_events(client, total, now)[skip : skip + count]
    envelope = {"id": agent_id(client), "version": AGENT_VERSION}
    batches = chunks(events, batch)
    bodies = [
        json.dumps({"agent": envelope, "events": b}, separators=(",", ":")).encode()
        for b in batches
    ]
    url = f"{base_url}/api/v1/sync/push"
    with requests.Session() as session:
        session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        # Warm up: open the connection and let the server validate a batch without storing it.
        _push(session, url + "?dry_run=1", bodies[0], len(batches[0]), f"client {client} warm-up")
        barrier.wait(timeout=600)
        latencies = []
        started = time.monotonic()
        for i, (body, b) in enumerate(zip(bodies, batches, strict=True)):
            t = time.monotonic()
            _push(session, url, body, len(b), f"client {client} {phase} push {i}")
            latencies.append(time.monotonic() - t)
        finished = time.monotonic()
    return {
        "client": client,
        "start": started,
        "end": finished,
        "events": len(events),
        "requests": len(bodies),
        "latencies": latencies,
    }


# --------------------------------------------------------------------------- baseline


def _baseline_rows(
    client: int, count: int, now: datetime, branch_id: int, reps: dict[str, int]
) -> list[tuple]:
    """The rows the server would store for this client's events (hash, payload, local day)."""
    tz = ZoneInfo(BRANCH_TZ)
    rows = []
    for ev in generate_events(client, count, now):
        canonical = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        at = datetime.fromisoformat(ev["occurred_at"])
        rows.append(
            (
                uuid.UUID(ev["id"]),
                reps[ev["rep"]],
                ev["seq"],
                ev["type"],
                at,
                at.astimezone(tz).date(),
                uuid.UUID(ev["deal"]) if "deal" in ev else None,
                ev.get("customer"),
                None,
                hashlib.sha256(canonical.encode()).digest(),
                json.dumps(ev, separators=(",", ":")),
            )
        )
    return rows


# Binary parameters (%b): psycopg sends the arrays without quoting every element.
UNNEST_SQL = """
INSERT INTO bench_events (id, branch_id, rep_id, agent_id, seq, type, occurred_at, local_day,
                          received_at, deal_id, customer, playbook_version, content_hash, payload)
SELECT t.id, %(branch)b, t.rep_id, %(agent)b, t.seq, t.type, t.occurred_at, t.local_day,
       %(now)b, t.deal_id, t.customer, t.playbook_version, t.content_hash, t.payload::jsonb
FROM unnest(%(id)b::uuid[], %(rep_id)b::int[], %(seq)b::bigint[], %(type)b::text[],
            %(occurred_at)b::timestamptz[], %(local_day)b::date[], %(deal_id)b::uuid[],
            %(customer)b::text[], %(playbook_version)b::int[], %(content_hash)b::bytea[],
            %(payload)b::text[])
     AS t(id, rep_id, seq, type, occurred_at, local_day, deal_id, customer, playbook_version,
          content_hash, payload)
ON CONFLICT (id) DO NOTHING
"""
UNNEST_FIELDS = (
    "id",
    "rep_id",
    "seq",
    "type",
    "occurred_at",
    "local_day",
    "deal_id",
    "customer",
    "playbook_version",
    "content_hash",
    "payload",
)
VALUES_SQL = (
    f"INSERT INTO bench_events ({', '.join(COLUMNS)}) VALUES "
    f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) "
    f"ON CONFLICT (id) DO NOTHING"
)
RECORDSET_SQL = (
    "INSERT INTO bench_events SELECT * FROM "
    "json_populate_recordset(NULL::bench_events, %s) ON CONFLICT (id) DO NOTHING"
)


def _write_unnest(cur, rows, branch_id, agent, now) -> int:
    params = {name: [r[i] for r in rows] for i, name in enumerate(UNNEST_FIELDS)}
    params.update(branch=branch_id, agent=agent, now=now)
    cur.execute(UNNEST_SQL, params)
    return cur.rowcount


def _write_executemany(cur, rows, branch_id, agent, now) -> int:
    # psycopg 3 sends executemany as one pipeline: no round trip per row.
    cur.executemany(
        VALUES_SQL,
        [
            (
                r[0],
                branch_id,
                r[1],
                agent,
                r[2],
                r[3],
                r[4],
                r[5],
                now,
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
            )
            for r in rows
        ],
    )
    return cur.rowcount


def _write_recordset(cur, rows, branch_id, agent, now) -> int:
    # The server's own form: one JSON array per batch, expanded by json_populate_recordset.
    received = now.isoformat()
    parts = []
    for r in rows:
        head = json.dumps(
            {
                "id": str(r[0]),
                "branch_id": branch_id,
                "rep_id": r[1],
                "agent_id": agent,
                "seq": r[2],
                "type": r[3],
                "occurred_at": r[4].isoformat(),
                "local_day": r[5].isoformat(),
                "received_at": received,
                "deal_id": r[6] and str(r[6]),
                "customer": r[7],
                "playbook_version": r[8],
                "content_hash": "\\x" + r[9].hex(),
                "status": "counted",  # the recordset names every column: no default applies
            },
            separators=(",", ":"),
        )
        parts.append(f'{head[:-1]},"payload":{r[10]}}}')
    cur.execute(RECORDSET_SQL, ("[" + ",".join(parts) + "]",))
    return cur.rowcount


BASELINE_METHODS = {
    "unnest": _write_unnest,
    "executemany": _write_executemany,
    "recordset": _write_recordset,
}


def baseline_client(
    client: int,
    dsn: str,
    batch: int,
    count: int,
    now: datetime,
    branch_id: int,
    reps: dict[str, int],
    method: str,
    barrier,
) -> dict:
    """Insert this client's rows into ``bench_events``: one statement and commit per batch."""
    batches = chunks(_baseline_rows(client, count, now, branch_id, reps), batch)
    write = BASELINE_METHODS[method]
    agent = agent_id(client)
    inserted = 0
    latencies = []
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        conn.commit()
        barrier.wait(timeout=600)
        started = time.monotonic()
        for rows in batches:
            t = time.monotonic()
            inserted += write(cur, rows, branch_id, agent, datetime.now(UTC))
            conn.commit()
            latencies.append(time.monotonic() - t)
        finished = time.monotonic()
    if inserted != count:
        raise RuntimeError(f"baseline client {client}: {count} rows sent, {inserted} inserted")
    return {
        "client": client,
        "start": started,
        "end": finished,
        "events": count,
        "requests": len(batches),
        "latencies": latencies,
    }


# --------------------------------------------------------------------------- running phases


def run_phase(pool: cf.ProcessPoolExecutor, manager, clients: int, fn, per_client) -> dict:
    """Run ``fn(*per_client(i), barrier)`` in every client at once; return totals and rates."""
    barrier = manager.Barrier(clients)
    futures = [pool.submit(fn, *per_client(i), barrier) for i in range(clients)]
    done, _ = cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
    if any(f.exception() for f in done):
        barrier.abort()
    results = [f.result() for f in futures]  # raises the first failure
    start, end = min(r["start"] for r in results), max(r["end"] for r in results)
    elapsed = end - start
    events = sum(r["events"] for r in results)
    reqs = sum(r["requests"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "start": start,
        "end": end,
        "events": events,
        "requests": reqs,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "requests_per_s": reqs / elapsed,
        "latency_median": statistics.median(latencies),
        "latency_p95": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
    }


# --------------------------------------------------------------------------- setup


def recreate_database(dsn: str) -> None:
    name = conninfo.conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise click.ClickException(f"--database-url must name a database: {dsn}")
    admin = conninfo.make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def hq_server_command() -> list[str]:
    script = Path(sys.executable).parent / "hq-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hq_server.cli"]


def hq(env: dict, *args: str) -> str:
    proc = subprocess.run([*hq_server_command(), *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise click.ClickException(
            f"hq-server {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def write_org_csv(path: Path, clients: int) -> None:
    lines = ["region_code,region_name,branch_code,branch_name,rep_code,rep_name"]
    for c in range(clients):
        for r, rep in enumerate(rep_codes(c)):
            lines.append(
                f"BENCH,Bench region,{branch_code(c)},Bench branch {c + 1},"
                f"{rep},Bench rep {c + 1}-{r + 1}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def issue_tokens(env: dict, clients: int) -> list[str]:
    procs = [
        subprocess.Popen(
            [*hq_server_command(), "agent-token", branch_code(c)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in range(clients)
    ]
    tokens = []
    for c, proc in enumerate(procs):
        out, err = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            raise click.ClickException(f"agent-token {branch_code(c)} failed:\n{out}{err}")
        tokens.append(out.strip().splitlines()[-1].strip())
    return tokens


def org_ids(dsn: str, clients: int) -> tuple[list[int], dict[str, int]]:
    codes = [branch_code(c) for c in range(clients)]
    with psycopg.connect(dsn) as conn:
        branches = dict(
            conn.execute(
                "SELECT code, id FROM org_units WHERE code = ANY(%s) AND active_to IS NULL",
                (codes,),
            ).fetchall()
        )
        reps = dict(conn.execute("SELECT code, id FROM reps").fetchall())
    return [branches[c] for c in codes], reps


def start_server(env: dict, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    logfile = open(log_path, "wb")  # noqa: SIM115  (the child keeps writing to it)
    proc = subprocess.Popen(
        [*hq_server_command(), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logfile.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                f"hq-server serve exited ({proc.returncode}):\n{tail(log_path)}"
            )
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise click.ClickException(f"hq-server serve did not answer /healthz:\n{tail(log_path)}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(45)
    except subprocess.TimeoutExpired:
        log("server did not stop on SIGTERM; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def checkpoint(dsn: str) -> None:
    """Flush dirty buffers so one phase's writes do not slow the next one down."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as exc:  # needs superuser or pg_checkpoint; only a nicety
        log(f"CHECKPOINT skipped: {exc}")


def count_rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]


def server_errors(log_path: Path) -> list[str]:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [
        line
        for line in text.splitlines()
        if "Traceback" in line or " ERROR " in line or "[CRITICAL]" in line
    ]


# --------------------------------------------------------------------------- main


def prepare(dsn: str, env: dict, instance: Path, clients: int) -> tuple[list, list, dict]:
    """Fresh database, org, one token per branch and an empty ``bench_events``."""
    log(f"recreating database {dsn}")
    recreate_database(dsn)
    hq(env, "db", "upgrade")
    org_csv = instance / "org.csv"
    write_org_csv(org_csv, clients)
    hq(env, "org", "import", str(org_csv))
    tokens = issue_tokens(env, clients)
    branch_ids, rep_ids = org_ids(dsn, clients)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_events")
        conn.execute("CREATE TABLE bench_events (LIKE events INCLUDING ALL)")
    log(f"org: {clients} branch(es), {2 * clients} reps; tokens issued")
    return tokens, branch_ids, rep_ids


def measure(
    opts: dict, dsn: str, base_url: str, tokens: list, branch_ids: list, rep_ids: dict
) -> tuple[list, dict, dict | None]:
    """Run the baseline rounds, the batch pushes and the single pushes; check the row counts."""
    clients, batch, events, single = opts["clients"], opts["batch"], opts["events"], opts["single"]
    per_client, single_per_client = split(events, clients), split(single, clients)
    totals = [a + b for a, b in zip(per_client, single_per_client, strict=True)]
    now, method = datetime.now(UTC), opts["baseline_method"]
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager, cf.ProcessPoolExecutor(clients, mp_context=ctx) as pool:
        baselines = []
        for r in range(opts["repeats"]):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE bench_events")
            checkpoint(dsn)
            res = run_phase(
                pool,
                manager,
                clients,
                baseline_client,
                lambda c: (c, dsn, batch, per_client[c], now, branch_ids[c], rep_ids, method),
            )
            baselines.append(res)
            log(
                f"baseline {r + 1}/{opts['repeats']} ({method}): {res['events']} rows in "
                f"{res['seconds']:.2f}s = {res['events_per_s']:,.0f} rows/s"
            )
        expect_rows(dsn, "bench_events", events)

        checkpoint(dsn)
        log(f"pushing {events} events in batches of {batch} from {clients} clients")
        pushed = run_phase(
            pool,
            manager,
            clients,
            http_client,
            lambda c: (c, base_url, tokens[c], batch, 0, per_client[c], totals[c], now, "batch"),
        )
        log(
            f"batch pushes: {pushed['events']} events in {pushed['seconds']:.2f}s = "
            f"{pushed['events_per_s']:,.0f} events/s"
        )
        expect_rows(dsn, "events", events)

        singles = None
        if single:
            checkpoint(dsn)
            log(f"pushing {single} single-event requests from {clients} clients")
            active = [c for c in range(clients) if single_per_client[c]]
            singles = run_phase(
                pool,
                manager,
                len(active),
                http_client,
                lambda i: (
                    active[i],
                    base_url,
                    tokens[active[i]],
                    1,
                    per_client[active[i]],
                    single_per_client[active[i]],
                    totals[active[i]],
                    now,
                    "single",
                ),
            )
            log(
                f"single pushes: {singles['requests']} requests in "
                f"{singles['seconds']:.2f}s = {singles['requests_per_s']:,.1f} req/s"
            )
            expect_rows(dsn, "events", events + single)
    return baselines, pushed, singles


def expect_rows(dsn: str, table: str, expected: int) -> None:
    stored = count_rows(dsn, table)
    if stored != expected:
        raise click.ClickException(f"{table} holds {stored} rows, expected {expected}")


def cpu_table(meter: CpuMeter, phases: list[tuple[str, dict]]) -> list[str]:
    """Lines of CPU time per event (µs) by group of processes, for each measured phase."""
    rows = [("cpu per event, µs", *GROUPS, "all")]
    for name, phase in phases:
        spent = meter.between(phase["start"], phase["end"])
        if spent is None:
            continue
        # Per event: the phase's events over the phase's length, at the window's rate.
        scale = phase["seconds"] / spent["seconds"] / phase["events"] * 1e6
        values = [spent[g] * scale for g in GROUPS]
        rows.append((name, *(f"{v:.1f}" for v in values), f"{sum(values):.1f}"))
    return format_table(rows) if len(rows) > 1 else []


def format_table(rows: list[tuple]) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            str(v).rjust(w) if i else str(v).ljust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def report(
    opts: dict,
    baselines: list,
    pushed: dict,
    singles: dict | None,
    wall: float,
    errors: list[str],
    meter: CpuMeter,
) -> None:
    """Print the result table, the CPU split, a summary line and the RESULT line (last)."""
    base_rate = statistics.median(b["events_per_s"] for b in baselines)
    ratio = pushed["events_per_s"] / base_rate
    single_rate = singles["requests_per_s"] if singles else 0.0

    def line(name: str, r: dict) -> tuple:
        return (
            name,
            r["events"],
            f"{r['seconds']:.2f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['requests_per_s']:,.1f}",
            f"{r['latency_median'] * 1000:.1f}",
            f"{r['latency_p95'] * 1000:.1f}",
        )

    rows = [("phase", "events", "seconds", "events/s", "req/s", "p50 ms", "p95 ms")]
    rows += [
        line(f"baseline {opts['baseline_method']} #{i + 1}", b) for i, b in enumerate(baselines)
    ]
    rows.append(line(f"HTTP batch x{opts['batch']}", pushed))
    if singles:
        rows.append(line("HTTP single", singles))
    print(
        f"clients={opts['clients']} batch={opts['batch']} workers={opts['workers']} "
        f"cpus={os.cpu_count()}; latencies per request; baseline = median of "
        f"{len(baselines)} run(s)"
    )
    for text_line in format_table(rows):
        print(text_line)
    phases = [(f"baseline {opts['baseline_method']} #{i + 1}", b) for i, b in enumerate(baselines)]
    for text_line in cpu_table(meter, [*phases, (f"HTTP batch x{opts['batch']}", pushed)]):
        print(text_line)
    print(
        f"events/s {pushed['events_per_s']:,.0f}  baseline rows/s {base_rate:,.0f}  "
        f"ratio {ratio:.2f} (target >= 0.35)  single req/s {single_rate:,.1f}  "
        f"wall {wall:.0f}s"
    )
    if errors:
        print(f"WARNING: {len(errors)} error line(s) in the server log, e.g. {errors[0]!r}")
    print(
        f"RESULT events_per_s={pushed['events_per_s']:.0f} baseline_per_s={base_rate:.0f} "
        f"ratio={ratio:.2f} single_req_per_s={single_rate:.1f}"
    )


@click.command()
@click.option("--events", default=200_000, show_default=True, help="events pushed in batches")
@click.option("--batch", default=500, show_default=True, help="events per push (max 1000)")
@click.option("--clients", default=4, show_default=True, help="concurrent clients, one branch each")
@click.option("--single", default=2000, show_default=True, help="single-event pushes")
@click.option("--workers", default=2, show_default=True, help="gunicorn workers")
@click.option("--port", default=8765, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="baseline runs (median reported)")
@click.option(
    "--baseline-method",
    type=click.Choice(sorted(BASELINE_METHODS)),
    default="unnest",
    show_default=True,
    help="how the baseline writes a batch",
)
@click.option(
    "--database-url",
    default="postgresql:///hq_bench",
    show_default=True,
    help="libpq URL of the benchmark database; it is DROPPED and recreated",
)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
def main(**opts) -> None:
    """Benchmark event ingest over HTTP against raw psycopg batched upserts."""
    if not 1 <= opts["batch"] <= 1000:
        raise click.BadParameter("must be 1..1000", param_hint="--batch")
    if (
        opts["clients"] < 1
        or opts["events"] < opts["clients"]
        or opts["single"] < 0
        or opts["repeats"] < 1
    ):
        raise click.UsageError("need clients >= 1, events >= clients, single >= 0, repeats >= 1")
    wall_start = time.monotonic()
    dsn = opts["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    instance = Path(tempfile.mkdtemp(prefix="hq-bench-"))
    env = dict(
        os.environ,
        DATABASE_URL=dsn,
        REDIS_URL=opts["redis_url"],
        HQ_INSTANCE_DIR=str(instance),
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="WARNING",
    )
    log_path = instance / "server.log"
    server = None
    ok = False
    try:
        tokens, branch_ids, rep_ids = prepare(dsn, env, instance, opts["clients"])
        server = start_server(env, opts["port"], opts["workers"], log_path)
        base_url = f"http://127.0.0.1:{opts['port']}"
        log(f"hq-server serve up at {base_url} (pid {server.pid}, {opts['workers']} workers)")
        with CpuMeter(server.pid) as meter:
            baselines, pushed, singles = measure(opts, dsn, base_url, tokens, branch_ids, rep_ids)
        ok = True
    finally:
        if server is not None:
            log("stopping hq-server")
            stop_server(server)
        errors = server_errors(log_path)
        if errors or not ok:
            log(
                f"server log {log_path} ({len(errors)} error line(s)); last lines:\n"
                f"{tail(log_path)}"
            )
        if ok and not errors:
            shutil.rmtree(instance, ignore_errors=True)
    report(opts, baselines, pushed, singles, time.monotonic() - wall_start, errors, meter)


if __name__ == "__main__":
    main()
