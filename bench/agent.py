"""Branch agent benchmark: recording latency at the desk, draining a backlog, memory.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/agent.py                 # full run: 100k events
    .venv/bin/python bench/agent.py --events 20000  # quick run

The script recreates the benchmark database (default ``postgresql:///hq_bench_agent``),
migrates it, imports two branches (AGENTA for the agent, AGENTB for the baseline), issues
their agent tokens and starts ``hq-server serve``. Then it measures:

1. recording: ``--records`` calls of ``branch_agent.recorder.record`` (one transaction
   each, as at the desk), interleaved with a plain SQLite insert of the same row into a
   table of the same schema with the same pragmas (WAL, synchronous=FULL): p50 and p99;
2. draining: ``--events`` events queued in the outbox, then pushed to HQ by the agent's
   own ``branch-agent sync --batch N`` in a child process (its max RSS is the memory
   figure); the baseline is the same events (other ids, for the other branch, pushed
   first) sent by a plain ``requests`` loop from a list, same batch size and gzip.

Progress goes to stderr; the table and the last line, ``RESULT ...``, go to stdout.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import orjson
import requests

BRANCHES = {"AGENTA": ["AGENTA-R1", "AGENTA-R2"], "AGENTB": ["AGENTB-R1", "AGENTB-R2"]}
TZ = ZoneInfo("Asia/Shanghai")
NAMESPACE = uuid.UUID("0b7a6c1e-2f0d-4c55-9d1a-6a1f3e2b9c70")
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values`` by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- events


def _deal_plan(rng: random.Random) -> list[tuple[str, dict]]:
    amount = round(rng.uniform(5_000, 900_000), 2)
    opened = {"name": f"Deal {rng.randrange(10**6):06d}", "amount": amount, "currency": "CNY"}
    plan = [("deal.opened", opened)]
    plan += [("call.logged", {"connected": rng.random() < 0.6}) for _ in range(rng.randint(1, 3))]
    plan.append(("visit.logged", {"decision_maker_met": rng.random() < 0.5}))
    if rng.random() < 0.6:
        plan.append(("quote.issued", {"amount": round(amount * 0.9, 2), "currency": "CNY"}))
    if rng.random() < 0.6:
        plan.append(rng.choice([("deal.won", {}), ("deal.lost", {"loss_reason": "price"})]))
    return plan


def queue_backlog(outbox, count: int, reps: list[str], seed: int = 1) -> None:
    """Queue ``count`` checked events, oldest 60 days ago, in transactions of 1000."""
    from branch_agent.recorder import build_event

    rng = random.Random(seed)
    start, step = datetime.now(TZ) - timedelta(days=60), timedelta(days=60) / max(count, 1)
    plan: list[tuple[str, dict]] = []
    chunk: list[dict] = []
    deal = rep = None
    for i in range(count):
        if not plan:
            plan = _deal_plan(rng)
            deal, rep = str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(reps)
        type_, data = plan.pop(0)
        chunk.append(
            build_event(
                outbox,
                type_,
                rep,
                data,
                deal=deal,
                customer=f"CUST-{rng.randrange(500):03d}",
                occurred_at=start + step * i,
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
        )
        if len(chunk) == 1000 or i == count - 1:
            outbox.add_many(chunk, source="bench")
            chunk = []
        if (i + 1) % 20_000 == 0:
            log(f"  queued {i + 1:,}")


def for_branch_b(body: dict) -> dict:
    """Return the same event for the baseline branch: other id, deal and rep, same shape."""
    out = {**body, "id": str(uuid.uuid5(NAMESPACE, body["id"]))}
    out["rep"] = body["rep"].replace("AGENTA", "AGENTB")
    if "deal" in body:
        out["deal"] = str(uuid.uuid5(NAMESPACE, body["deal"]))
    return out


# --------------------------------------------------------------------------- recording


def measure_recording(data_dir: Path, plain_path: Path, records: int) -> dict:
    """Time ``record`` and a plain SQLite insert of the same row, interleaved."""
    from branch_agent.outbox import Outbox
    from branch_agent.recorder import record
    from shared.events import content_hash

    plain = sqlite3.connect(plain_path, isolation_level=None)
    plain.execute("PRAGMA journal_mode=WAL")
    plain.execute("PRAGMA synchronous=FULL")
    plain.executescript(resources.files("branch_agent").joinpath("schema.sql").read_text())
    rng = random.Random(5)
    agent_ms, plain_ms = [], []
    try:
        with Outbox(data_dir) as outbox:
            reps = [r["code"] for r in outbox.get_cache("reps", [])]
            for i in range(records):
                kind = ("visit.logged", {"decision_maker_met": rng.random() < 0.5, "outcome": "ok"})
                if i % 2:
                    kind = ("call.logged", {"connected": True, "outcome": "call back"})
                t = time.perf_counter()
                _, event, *_ = record(outbox, kind[0], rng.choice(reps), kind[1], customer="C-1")
                agent_ms.append((time.perf_counter() - t) * 1000)
                row = (
                    str(uuid.uuid4()),
                    event["type"],
                    event["rep"],
                    event.get("deal"),
                    event["occurred_at"],
                    orjson.dumps(event).decode(),
                    content_hash(event),
                    datetime.now(TZ).isoformat(),
                    "desk",
                )
                t = time.perf_counter()
                plain.execute(
                    "INSERT INTO outbox (id, type, rep, deal, occurred_at, body, content_hash, "
                    "created_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                plain_ms.append((time.perf_counter() - t) * 1000)
    finally:
        plain.close()
    return {
        "agent_p50": statistics.median(agent_ms),
        "agent_p99": percentile(agent_ms, 0.99),
        "plain_p50": statistics.median(plain_ms),
        "plain_p99": percentile(plain_ms, 0.99),
    }


# --------------------------------------------------------------------------- draining


def drain_in_child(data_dir: Path, batch: int, timeout: float) -> dict:
    """Run the agent's ``sync`` in a child process; return its seconds and max RSS."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--drain-only",
            str(data_dir),
            "--batch",
            str(batch),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise click.ClickException(f"the agent did not drain in {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise click.ClickException(f"the agent's sync failed ({proc.returncode}):\n{out}{err}")
    lines = out.strip().splitlines()
    log(f"  agent: {lines[0] if lines else '?'}")
    return json.loads(lines[-1])


def drain_here(data_dir: Path, batch: int) -> None:
    """Drain ``data_dir`` with ``branch-agent sync`` in this process; print time and RSS."""
    from branch_agent.cli import main as agent_main

    started = time.perf_counter()
    agent_main(["--data-dir", str(data_dir), "sync", "--batch", str(batch)], standalone_mode=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_kb() / 1024}))


def peak_rss_kb() -> int:
    """Return this process's peak RSS in KiB.

    ``ru_maxrss`` is not used where ``/proc`` can answer: Linux carries the parent's
    peak over ``fork`` + ``exec`` into it, so a child of a big parent reports the parent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def push_plain(base_url: str, token: str, events: list[dict], batch: int) -> float:
    """Push ``events`` from a list with a bare ``requests`` loop; return the seconds taken."""
    url = f"{base_url}/api/v1/sync/push"
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with requests.Session() as session:
        session.headers.update(headers)
        started = time.perf_counter()
        for first in range(0, len(events), batch):
            part = events[first : first + batch]
            payload = {"agent": {"id": "bench-plain", "version": "bench"}, "events": part}
            resp = session.post(url, data=gzip.compress(orjson.dumps(payload), compresslevel=5))
            counts = resp.json().get("counts", {}) if resp.ok else {}
            if counts.get("accepted") != len(part):
                raise click.ClickException(f"plain push: HTTP {resp.status_code} {resp.text[:500]}")
        return time.perf_counter() - started


# --------------------------------------------------------------------------- setup


def prepare(dsn: str, env: dict, instance: Path) -> dict[str, str]:
    """Fresh database, the two branches and their agent tokens."""
    from ingest import hq, recreate_database

    log(f"recreating database {dsn}")
    recreate_database(dsn)
    hq(env, "db", "upgrade")
    lines = ["region_code,region_name,branch_code,branch_name,rep_code,rep_name"]
    for branch, reps in BRANCHES.items():
        lines += [f"BENCH,Bench,{branch},Branch {branch},{rep},Rep {rep}" for rep in reps]
    org = instance / "org.csv"
    org.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hq(env, "org", "import", str(org))
    return {b: hq(env, "agent-token", b).strip().splitlines()[-1] for b in BRANCHES}


def init_agent(data_dir: Path, base_url: str, token: str) -> None:
    """Set the agent up as ``branch-agent init`` does (and pull once)."""
    from branch_agent.client import HQClient
    from branch_agent.outbox import Outbox
    from branch_agent.sync import pull_once

    with Outbox(data_dir) as outbox:
        outbox.set_meta(hq_url=base_url, token=token, agent_id=f"bench-{data_dir.name}")
        client = HQClient(base_url, token, f"bench-{data_dir.name}")
        try:
            pull_once(outbox, client)
        finally:
            client.close()


def check_drained(data_dir: Path, dsn: str, events: int) -> None:
    """Fail unless every event is synced and HQ's checksum for AGENTA equals the outbox's."""
    import hashlib

    import psycopg

    from branch_agent.outbox import Outbox

    with Outbox(data_dir) as outbox:
        counts, ours = outbox.counts(), outbox.checksum(("synced",))
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT e.id::text, e.content_hash FROM events e JOIN org_units u "
            "ON u.id = e.branch_id WHERE u.code = 'AGENTA'"
        ).fetchall()
    digest = hashlib.sha256()
    for event_id, chash in sorted((r[0], bytes(r[1])) for r in rows):
        digest.update(event_id.encode() + chash)
    if counts["synced"] != events or ours != (len(rows), digest.hexdigest()):
        raise click.ClickException(f"drain incomplete: outbox {counts}, HQ holds {len(rows)}")


# --------------------------------------------------------------------------- main


def run(opts: dict, dsn: str, env: dict, work: Path) -> dict:
    """Set up, start the server, measure everything; always stop the server."""
    from ingest import checkpoint, server_errors, start_server, stop_server, tail

    from branch_agent.outbox import Outbox

    log(f"work dir {work}")
    tokens = prepare(dsn, env, work)
    log_path = work / "server.log"
    server = start_server(env, opts["port"], opts["workers"], log_path)
    base_url = f"http://127.0.0.1:{opts['port']}"
    try:
        log(f"hq-server serve up at {base_url}")
        init_agent(work / "desk", base_url, tokens["AGENTA"])
        log(f"recording {opts['records']} events one by one (and the plain insert baseline)")
        rec = measure_recording(work / "desk", work / "plain.sqlite3", opts["records"])

        init_agent(work / "backlog", base_url, tokens["AGENTA"])
        log(f"queueing {opts['events']:,} events")
        started = time.perf_counter()
        with Outbox(work / "backlog") as outbox:
            queue_backlog(outbox, opts["events"], BRANCHES["AGENTA"])
            bodies = outbox.conn.execute("SELECT body FROM outbox ORDER BY seq").fetchall()
        queue_s = time.perf_counter() - started
        plain_events = [for_branch_b(orjson.loads(b[0])) for b in bodies]
        del bodies

        checkpoint(dsn)
        log(f"baseline: plain requests loop, batches of {opts['batch']}")
        plain_s = push_plain(base_url, tokens["AGENTB"], plain_events, opts["batch"])
        del plain_events
        checkpoint(dsn)
        log(f"agent: branch-agent sync --batch {opts['batch']}")
        drain = drain_in_child(work / "backlog", opts["batch"], opts["timeout"])
        check_drained(work / "backlog", dsn, opts["events"])
    finally:
        stop_server(server)
        errors = server_errors(log_path)
        if errors:
            log(f"{len(errors)} error line(s) in the server log:\n{tail(log_path)}")
    return {**rec, "queue_s": queue_s, "plain_s": plain_s, **drain, "server_errors": len(errors)}


def report(opts: dict, r: dict) -> None:
    """Print the figures with their baselines and ratios; the RESULT line last."""
    n, batch = opts["events"], opts["batch"]
    print(f"events={n} records={opts['records']} batch={batch} cpus={os.cpu_count()}")
    print(
        f"record one event    p50 {r['agent_p50']:7.2f} ms  p99 {r['agent_p99']:7.2f} ms   "
        f"plain SQLite insert p50 {r['plain_p50']:6.2f} ms  p99 {r['plain_p99']:6.2f} ms   "
        f"ratio p50 {r['agent_p50'] / r['plain_p50']:.2f} p99 {r['agent_p99'] / r['plain_p99']:.2f}"
    )
    print(
        f"drain {n} events  agent {r['seconds']:7.1f} s ({n / r['seconds']:,.0f}/s)   "
        f"plain requests loop {r['plain_s']:6.1f} s ({n / r['plain_s']:,.0f}/s)   "
        f"ratio {r['seconds'] / r['plain_s']:.2f}"
    )
    print(f"queue {n} events (build_event + add_many x1000)  {r['queue_s']:.1f} s")
    print(f"agent max RSS while draining  {r['rss_mb']:.1f} MB")
    if r["server_errors"]:
        print(f"WARNING: {r['server_errors']} error line(s) in the server log")
    print(
        f"RESULT drain_100k_s={r['seconds']:.1f} record_p99_ms={r['agent_p99']:.2f} "
        f"rss_mb={r['rss_mb']:.1f}"
    )


@click.command()
@click.option("--events", default=100_000, show_default=True, help="events queued and drained")
@click.option("--records", default=2000, show_default=True, help="events recorded one by one")
@click.option("--batch", default=1000, show_default=True, help="events per push (max 1000)")
@click.option("--workers", default=2, show_default=True, help="gunicorn workers")
@click.option("--port", default=8766, show_default=True)
@click.option("--timeout", default=1800.0, show_default=True, help="seconds allowed for a drain")
@click.option(
    "--database-url",
    default="postgresql:///hq_bench_agent",
    show_default=True,
    help="libpq URL of the benchmark database; it is DROPPED and recreated",
)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--drain-only", type=click.Path(path_type=Path), default=None, hidden=True)
def main(**opts) -> None:
    """Benchmark the branch agent: recording latency, draining a backlog, memory."""
    if opts["drain_only"]:
        drain_here(opts["drain_only"], opts["batch"])
        return
    if not 1 <= opts["batch"] <= 1000 or opts["events"] < 1 or opts["records"] < 1:
        raise click.UsageError("need 1 <= batch <= 1000, events >= 1 and records >= 1")
    dsn = opts["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    work = Path(tempfile.mkdtemp(prefix="hq-bench-agent-"))
    env = dict(
        os.environ,
        DATABASE_URL=dsn,
        REDIS_URL=opts["redis_url"],
        HQ_INSTANCE_DIR=str(work),
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="WARNING",
    )
    results = run(opts, dsn, env, work)
    if not results["server_errors"]:
        shutil.rmtree(work, ignore_errors=True)
    report(opts, results)


if __name__ == "__main__":
    main()
