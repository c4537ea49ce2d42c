"""Report reads on a generated company, against a plain GROUP BY over the raw events.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/reports.py           # full run: 10M events, about 25 minutes
    .venv/bin/python bench/reports.py --events 500000 --branches-per-region 10  # a minute

The database (default ``postgresql:///hq_bench_reports``) is DROPPED and recreated,
migrated with ``hq-server db upgrade`` and filled with a generated company
(HQ -> regions -> branches -> reps) and a year of events, loaded with COPY together
with the deal projection and the daily rollups they imply (the events' counts and the
deals' contributions). The hourly stripe folding (``compact_rollups``) runs once. Then
it measures:

1. the lagging job: ``scan_lagging()`` over all branches, median of ``--scans``;
2. for HQ, one region and one branch: ``/api/v1/funnel`` (30 and 90 days),
   ``/api/v1/metrics`` by branch and by rep (first page of 100 rows), and
   ``/api/v1/lagging``, in process
   with Flask's test client, ``--repeats`` timed requests after ``--warmups``;
3. baseline: the same answers from plain GROUP BY queries over ``events`` (one or
   two per read), with psycopg, ``--naive-repeats`` timed runs after one warm-up, and
   a check that the numbers agree (a mismatch fails the run).

Progress goes to stderr; the table and the ``RESULT`` line (last) go to stdout. The
database is kept afterwards for inspection.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import multiprocessing
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hq_server.metrics import deal_rollups, projection, rollups  # noqa: E402
from hq_server.metrics.funnel import win_rate  # noqa: E402
from hq_server.metrics.kpis import delta  # noqa: E402
from hq_server.metrics.weeks import FILL_WEEKLY, FILL_WEEKLY_UNITS  # noqa: E402
from hq_server.services.scope import units_on_path  # noqa: E402
from shared.stages import DEFAULT_STAGES, FUNNEL, STAGES_BY_NAME  # noqa: E402

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
CST = timezone(timedelta(hours=8))  # Asia/Shanghai has no DST: one fixed offset all year
DAY_START, DAY_SPAN = 9 * 3600, 9 * 3600  # events happen 09:00-18:00 local
POOL = 16  # open deals a rep works on at a time
NO_DEAL_CALLS = 0.10  # share of events that are calls not tied to a deal
LOSS_REASONS = ("price", "timing", "competitor", "no budget", "went silent")
NULL, BYTEA = "\\N", "\\\\x"  # COPY text format: a NULL, and the prefix of a bytea in hex
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values`` by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- generated company


def branch_profile(seed: int, code: str) -> dict:
    """Return how a branch behaves: most are ordinary, a few lag in one way or another."""
    rng = random.Random(f"{seed}:profile:{code}")
    roll = rng.random()
    profile = {
        "kind": "normal",
        "win": rng.uniform(0.85, 1.15),
        "dm": rng.uniform(0.85, 1.15),
        "connect": rng.uniform(0.9, 1.1),
        "lag_s": rng.uniform(60, 900),  # mean delay before the agent's push reaches HQ
        "quiet_days": 0,  # no events in the last N days (agent silent)
        "decline": False,  # a quarter of the usual activity in the last four weeks
    }
    if roll < 0.05:
        profile.update(kind="weak", win=0.5, dm=0.5, connect=0.7)
    elif roll < 0.06:
        profile.update(kind="late", lag_s=40 * 3600.0)
    elif roll < 0.08:
        profile.update(kind="declining", decline=True)
    elif roll < 0.085:
        profile.update(kind="silent", quiet_days=4)
    return profile


def _money(rng: random.Random, low: int, high: int) -> tuple[float, Decimal]:
    """Return an amount as sent on the wire (a JSON number) and as loaded (2-place Decimal)."""
    cents = rng.randrange(low * 100, high * 100)
    return cents / 100, Decimal(cents).scaleb(-2)


def _activity(rng: random.Random, profile: dict) -> tuple[list, str]:
    """Return a deal's calls and visits (a DM visit may move it on), and the stage reached."""
    steps: list[tuple[str, dict, dict]] = []
    for _ in range(rng.randint(1, 4)):
        call = {"connected": rng.random() < 0.6 * profile["connect"]}
        if call["connected"] and rng.random() < 0.3:
            call["reached_decision_maker"] = True
        call["duration_s"] = rng.randrange(20, 1800) if call["connected"] else 0
        steps.append(("call.logged", call, call))
    for _ in range(rng.randint(0, 2)):
        visit = {"decision_maker_met": rng.random() < 0.5 * profile["dm"]}
        steps.append(("visit.logged", visit, visit))
    rng.shuffle(steps)
    plan, stage = [], "lead"
    for kind, data, same in steps:
        plan.append((kind, data, same))
        if kind == "visit.logged" and data["decision_maker_met"] and stage == "lead":
            if rng.random() < 0.4:
                change = {"from": stage, "to": "visit"}
                plan.append(("deal.stage_changed", change, change))
            stage = "visit"
    return plan, stage


def _quote(rng: random.Random, stage: str) -> list:
    """Return a quote, maybe a move to the quote stage, maybe a new amount."""
    wire, amount = _money(rng, 5_000, 2_000_000)
    quote = {"amount": wire, "currency": "CNY"}
    if rng.random() < 0.3:
        quote["discount_pct"] = rng.randrange(1, 25)
    plan = [("quote.issued", quote, {**quote, "amount": amount})]
    if rng.random() < 0.4:
        change = {"from": stage, "to": "quote"}
        plan.append(("deal.stage_changed", change, change))
    if rng.random() < 0.1:
        wire, amount = _money(rng, 5_000, 2_000_000)
        plan.append(("deal.updated", {"amount": wire}, {"amount": amount}))
    return plan


def deal_plan(rng: random.Random, profile: dict, day: date) -> list[tuple[str, dict, dict]]:
    """Return one deal's events in order as (type, wire data, loaded data)."""
    wire, amount = _money(rng, 5_000, 2_000_000)
    opened = {"name": f"Deal {rng.randrange(10**6):06d}", "amount": wire, "currency": "CNY"}
    loaded = {**opened, "amount": amount}
    if rng.random() < 0.6:
        close = day + timedelta(days=rng.randrange(20, 120))
        opened["expected_close"], loaded["expected_close"] = close.isoformat(), close
    activity, stage = _activity(rng, profile)
    plan = [("deal.opened", opened, loaded), *activity]
    quoted = rng.random() < 0.6
    if quoted:
        plan += _quote(rng, stage)
    outcome = rng.random()
    if outcome < (0.45 if quoted else 0.2) * profile["win"]:
        won: dict = {}
        loaded = won
        if rng.random() < 0.5:
            wire, amount = _money(rng, 5_000, 2_000_000)
            won = {"amount": wire, "currency": "CNY"}
            loaded = {**won, "amount": amount}
        plan.append(("deal.won", won, loaded))
    elif outcome < 0.75:
        lost = {"loss_reason": rng.choice(LOSS_REASONS)}
        plan.append(("deal.lost", lost, lost))
    return plan  # the rest stay open


def _stamp(day: date, second: int) -> str:
    h, rest = divmod(DAY_START + second, 3600)
    return f"{day.isoformat()}T{h:02d}:{rest // 60:02d}:{rest % 60:02d}+08:00"


def _text(value) -> str:
    """Return one field of COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        value = orjson.dumps(value).decode()
    value = str(value)
    return value.replace("\\", "\\\\") if "\\" in value else value


DEAL_COLUMNS = (
    "id",
    "branch_id",
    "rep_id",
    "customer",
    "name",
    "stage",
    "status",
    "amount",
    "currency",
    "expected_close",
    "forecast_category",
    "loss_reason",
    "opened_at",
    "opened_day",
    "closed_at",
    "closed_day",
    "last_activity_at",
    "event_count",
    "reached_at",
    "versions",
)
EVENT_COLUMNS = (
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
    "content_hash",
    "payload",
)


def deal_row(state: dict) -> str:
    """Return a deal's projected state as the COPY line ``write_deals`` would store."""
    row = dict(state)
    row["opened_day"] = projection.local_day(state["opened_at"], TZ)
    row["closed_day"] = projection.local_day(state["closed_at"], TZ)
    return "\t".join(_text(row[c]) for c in DEAL_COLUMNS) + "\n"


def contribution_rows(branch_id: int, state: dict) -> list[str]:
    """Return a deal's rollup contributions (``deal_rollups``) as staging COPY lines."""
    return [
        f"{branch_id}\t{day}\t{rep}\t{metric}\t{value}\n"
        for (rep, day, metric), value in deal_rollups.contributions(state, TZ).items()
    ]


class BranchSim:
    """One branch's agent through the year: reps work their deals, day by day.

    Every event goes through the app's own projection (``apply_event``) and rollup
    increments (``add_into``), so the deals and rollups loaded are those ingest
    would have written for the same events.
    """

    def __init__(self, branch: dict, seed: int, per_rep: int, workdays: list[date], now: float):
        self.id, self.code = branch["id"], branch["code"]
        self.agent = f"agent-{self.code.lower()}"
        self.profile = branch_profile(seed, self.code)
        self.rng = random.Random(f"{seed}:events:{self.code}")
        self.now = now
        self.seq = 0
        self.last_received = 0.0
        weights = []
        last = workdays[-1]
        for day in workdays:
            w = 1.0
            if self.profile["decline"] and (last - day).days < 28:
                w = 0.25
            if (last - day).days < self.profile["quiet_days"]:
                w = 0.0
            weights.append(w)
        self.reps = []
        for rep_id, rep_code in branch["reps"]:
            counts = Counter(self.rng.choices(range(len(workdays)), weights=weights, k=per_rep))
            self.reps.append({"id": rep_id, "code": rep_code, "counts": counts, "pool": []})

    def _open_deal(self, rep: dict, day: date) -> dict:
        rng = self.rng
        deal_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return {
            "id": deal_id,
            "customer": f"Customer {rng.getrandbits(40):010x}",
            "plan": deal_plan(rng, self.profile, day),
            "state": projection.new_deal(deal_id, self.id),
        }

    def run_day(self, index: int, day: date) -> tuple[list[str], ...]:
        """Return the COPY lines of one working day: events, finished deals, rollups, and
        the finished deals' contributions."""
        rng = self.rng
        slots = []
        for rep in self.reps:
            n = rep["counts"].get(index, 0)
            if n:
                slots += [(s, rep) for s in rng.sample(range(DAY_SPAN), n)]
        slots.sort(key=lambda slot: slot[0])
        midnight = datetime(day.year, day.month, day.day, tzinfo=CST)
        epoch0 = midnight.timestamp() + DAY_START
        events, deals, totals, contributions = [], [], {}, []
        for second, rep in slots:
            self.seq += 1
            eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            at = _stamp(day, second)
            raw: dict = {"id": eid, "seq": self.seq, "type": "", "occurred_at": at}
            deal = None
            if rng.random() < NO_DEAL_CALLS:
                kind, data = "call.logged", {"connected": rng.random() < 0.4}
                loaded = data
            else:
                pool = rep["pool"]
                while len(pool) < POOL:
                    pool.append(self._open_deal(rep, day))
                deal = pool[rng.randrange(len(pool))]
                kind, data, loaded = deal["plan"].pop(0)
            raw["type"] = kind
            raw["rep"] = rep["code"]
            if deal is not None:
                raw["deal"], raw["customer"] = deal["id"], deal["customer"]
            raw["data"] = data
            event = {
                "id": eid,
                "type": kind,
                "data": loaded,
                "occurred_at": midnight + timedelta(seconds=DAY_START + second),
                "customer": raw.get("customer"),
                "rep_id": rep["id"],
            }
            rollups.add_into(totals, (rep["id"],), event)
            if deal is not None:
                projection.apply_event(deal["state"], event)
                if not deal["plan"]:
                    rep["pool"].remove(deal)
                    deals.append(deal_row(deal["state"]))
                    contributions += contribution_rows(self.id, deal["state"])
            payload = orjson.dumps(raw)
            digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
            received = min(self.now, epoch0 + second + rng.expovariate(1 / self.profile["lag_s"]))
            self.last_received = max(self.last_received, received)
            deal_id, customer = (deal["id"], deal["customer"]) if deal else (NULL, NULL)
            events.append(
                f"{eid}\t{self.id}\t{rep['id']}\t{self.agent}\t{self.seq}\t{kind}\t{at}\t{day}\t"
                f"{datetime.fromtimestamp(received, UTC).isoformat()}\t{deal_id}\t{customer}\t"
                f"{BYTEA}{digest}\t{_text(payload.decode())}\n"
            )
        rollup_rows = [
            f"{self.id}\t{day}\t{rep_id}\t{metric}\t{value}\n"
            for (rep_id, metric), value in totals.items()
        ]
        return events, deals, rollup_rows, contributions

    def finish(self) -> tuple[list[str], list[str]]:
        """Return the COPY lines of the deals still being worked on, and their contributions."""
        pools = [d["state"] for rep in self.reps for d in rep["pool"] if d["state"]["event_count"]]
        for rep in self.reps:
            rep["pool"] = []
        return [deal_row(s) for s in pools], [
            line for s in pools for line in contribution_rows(self.id, s)
        ]


# --------------------------------------------------------------------------- loading


def create_org(dsn: str, regions: int, per_region: int, reps_per_branch: int) -> list[dict]:
    """Insert HQ, regions, branches and reps as ``import_org`` would; return the branches."""
    with psycopg.connect(dsn) as conn:
        sequence = conn.execute("SELECT pg_get_serial_sequence('org_units', 'id')").fetchone()[0]
        total = 1 + regions * (1 + per_region)
        ids = iter(
            r[0]
            for r in conn.execute(
                "SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, total)
            ).fetchall()
        )
        hq = next(ids)
        units = [(hq, "HQ", "Headquarters", "hq", None, f"/{hq}/", 0)]
        branches = []
        for r in range(1, regions + 1):
            rid = next(ids)
            region = (rid, f"REG{r:02d}", f"Region {r:02d}", "region", hq, f"/{hq}/{rid}/", 1)
            units.append(region)
            for b in range(1, per_region + 1):
                bid, n = next(ids), (r - 1) * per_region + b
                path = f"{region[5]}{bid}/"
                units.append((bid, f"BR{n:04d}", f"Branch {n:04d}", "branch", rid, path, 2))
                branches.append({"id": bid, "code": f"BR{n:04d}", "region": region[1]})
        with conn.cursor().copy(
            "COPY org_units (id, code, name, kind, parent_id, path, level, timezone) FROM STDIN"
        ) as copy:
            for unit in units:
                copy.write_row((*unit, TZ_NAME))
        with conn.cursor().copy("COPY reps (code, name, branch_id, active) FROM STDIN") as copy:
            for branch in branches:
                code, bid = branch["code"], branch["id"]
                for k in range(1, reps_per_branch + 1):
                    copy.write_row((f"{code}.R{k:02d}", f"Rep {code[2:]}-{k:02d}", bid, True))
        reps = defaultdict(list)
        for rid, code, bid in conn.execute("SELECT id, code, branch_id FROM reps ORDER BY id"):
            reps[bid].append((rid, code))
    for branch in branches:
        branch["reps"] = reps[branch["id"]]
    return branches


BULK_TABLES = ["events", "deals", "daily_rollups"]
# Each finished deal's rollup contributions, summed into daily_rollups after the load.
STAGING = "bench_deal_contributions"


def drop_keys(conn) -> list[str]:
    """Drop the bulk tables' keys and indexes; return the DDL that puts them back, in order."""
    referenced = conn.execute(
        "SELECT conname FROM pg_constraint WHERE confrelid = ANY(%s::regclass[]) "
        "AND conrelid <> ALL(%s::regclass[])",
        (BULK_TABLES, BULK_TABLES),
    ).fetchall()
    if referenced:
        raise click.ClickException(f"other tables reference the bulk tables: {referenced}")
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
        "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('p', 'u', 'f')",
        (BULK_TABLES,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)",
        (BULK_TABLES,),
    ).fetchall()
    for table, name, _, _ in sorted(constraints, key=lambda c: c[3] != "f"):
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    add = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, k in constraints if k != "f"]
    fks = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, k in constraints if k == "f"]
    return add + [d for _, d in indexes] + fks


_progress = None


def _init_loader(progress) -> None:
    global _progress
    _progress = progress


def load_share(
    worker: int,
    dsn: str,
    branches: list[dict],
    seed: int,
    per_rep: int,
    workdays: list[date],
    now: float,
) -> dict:
    """Generate the events of some branches day by day; COPY events, deals and rollups."""
    sims = [BranchSim(b, seed, per_rep, workdays, now) for b in branches]
    counts = Counter()
    events_sql = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    deals_sql = f"COPY deals ({', '.join(DEAL_COLUMNS)}) FROM STDIN"
    with (
        psycopg.connect(dsn) as events_conn,
        psycopg.connect(dsn) as deals_conn,
        psycopg.connect(dsn) as rollups_conn,
        psycopg.connect(dsn) as staging_conn,
        events_conn.cursor().copy(events_sql) as events_copy,
        deals_conn.cursor().copy(deals_sql) as deals_copy,
        rollups_conn.cursor().copy(
            "COPY daily_rollups (branch_id, day, rep_id, metric, value) FROM STDIN"
        ) as rollups_copy,
        staging_conn.cursor().copy(f"COPY {STAGING} FROM STDIN") as staging_copy,
    ):
        for index, day in enumerate(workdays):
            events, deals, rows, parts = [], [], [], []
            for sim in sims:
                e, d, r, c = sim.run_day(index, day)
                events += e
                deals += d
                rows += r
                parts += c
            events_copy.write("".join(events))
            deals_copy.write("".join(deals))
            rollups_copy.write("".join(rows))
            staging_copy.write("".join(parts))
            counts.update(events=len(events), deals=len(deals), rollups=len(rows))
            _progress[worker] = counts["events"]
        for sim in sims:
            deals, parts = sim.finish()
            deals_copy.write("".join(deals))
            staging_copy.write("".join(parts))
            counts["deals"] += len(deals)
    streams = [(s.id, s.agent, s.seq, s.last_received, s.profile["quiet_days"]) for s in sims]
    return {**counts, "streams": streams}


def load_company(dsn: str, branches: list[dict], opts: dict) -> dict:
    """Fill events, deals, rollups and agent streams; rebuild keys; vacuum; return timings."""
    timings = {}
    reps = sum(len(b["reps"]) for b in branches)
    per_rep = -(-opts["events"] // reps)
    today = date.today()
    days = [today - timedelta(days=d) for d in range(opts["days"], 0, -1)]
    workdays = [d for d in days if d.weekday() < 5]
    now = time.time()
    with psycopg.connect(dsn, autocommit=True) as conn:
        restore = drop_keys(conn)
        conn.execute(
            f"CREATE UNLOGGED TABLE {STAGING} (branch_id integer, day date, rep_id integer, "
            "metric text, value numeric)"
        )
    jobs = opts["jobs"]
    shares = [branches[i::jobs] for i in range(jobs)]
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Array("q", jobs, lock=False)
    log(
        f"generating {per_rep * reps:,} events ({per_rep} per rep, {len(workdays)} working days "
        f"from {workdays[0]} to {workdays[-1]}) in {jobs} process(es), COPY as they come"
    )
    started = time.monotonic()
    with cf.ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_init_loader, initargs=(progress,)
    ) as pool:
        futures = [
            pool.submit(load_share, i, dsn, shares[i], opts["seed"], per_rep, workdays, now)
            for i in range(jobs)
        ]
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=20, return_when=cf.FIRST_EXCEPTION)
            if any(f.exception() for f in done):
                for f in pending:
                    f.cancel()
                break
            loaded = sum(progress)
            elapsed = time.monotonic() - started
            log(f"  {loaded:,} events loaded, {loaded / elapsed:,.0f}/s")
        results = [f.result() for f in futures]
    timings["generate_copy_s"] = time.monotonic() - started
    totals = Counter()
    for r in results:
        totals.update({k: v for k, v in r.items() if k != "streams"})
    log(
        f"COPY done: {totals['events']:,} events, {totals['deals']:,} deals, "
        f"{totals['rollups']:,} rollup rows in {timings['generate_copy_s']:.0f}s"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor().copy(
            "COPY agent_streams (branch_id, agent_id, agent_version, max_seq, events_accepted, "
            "pushes, last_push_at) FROM STDIN"
        ) as copy:
            rng = random.Random(opts["seed"])
            for r in results:
                for bid, agent, seq, last, quiet in r["streams"]:
                    # An agent pushes every few minutes, with or without new events.
                    pushed = last if quiet else now - rng.uniform(0, 1800)
                    copy.write_row(
                        (
                            bid,
                            agent,
                            "bench-1.0",
                            seq,
                            seq,
                            -(-seq // 200),
                            datetime.fromtimestamp(pushed, UTC),
                        )
                    )
        started = time.monotonic()
        conn.execute("SET work_mem = '1GB'")
        conn.execute(
            "INSERT INTO daily_rollups (branch_id, day, rep_id, metric, value) "
            f"SELECT branch_id, day, rep_id, metric, sum(value) FROM {STAGING} GROUP BY 1, 2, 3, 4"
        )
        conn.execute(f"DROP TABLE {STAGING}")
        timings["deal_rollups_s"] = time.monotonic() - started
        log(f"deal rollups summed in {timings['deal_rollups_s']:.0f}s")
        started = time.monotonic()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for ddl in restore:
            t = time.monotonic()
            conn.execute(ddl)
            log(f"  {time.monotonic() - t:5.1f}s {ddl[:110]}")
        timings["keys_s"] = time.monotonic() - started
        started = time.monotonic()
        # The unit totals ingest keeps beside the rep rows (as migration 0009 fills them).
        conn.execute(
            "INSERT INTO unit_rollups (unit_id, day, metric, stripe, value) "
            "SELECT CAST(a AS integer), r.day, r.metric, r.branch_id % 16, sum(r.value) "
            "FROM daily_rollups r JOIN org_units b ON b.id = r.branch_id "
            f"{units_on_path('b')} "
            "GROUP BY 1, 2, 3, 4"
        )
        timings["unit_rollups_s"] = time.monotonic() - started
        log(f"unit rollups {timings['unit_rollups_s']:.0f}s")
        started = time.monotonic()
        # Their weeks, as ingest writes them beside the daily rows (as migration 0014 fills).
        conn.execute(FILL_WEEKLY)
        conn.execute(FILL_WEEKLY_UNITS)
        timings["weekly_rollups_s"] = time.monotonic() - started
        log(f"weekly rollups {timings['weekly_rollups_s']:.0f}s")
        started = time.monotonic()
        conn.execute(
            f"VACUUM (ANALYZE) {', '.join(BULK_TABLES)}, unit_rollups, weekly_rollups, "
            "weekly_unit_rollups"
        )
        conn.execute("ANALYZE")
        timings["vacuum_analyze_s"] = time.monotonic() - started
        log(
            f"keys and indexes {timings['keys_s']:.0f}s, VACUUM ANALYZE "
            f"{timings['vacuum_analyze_s']:.0f}s"
        )
    return {**timings, **totals}


# --------------------------------------------------------------------------- checks on the load


def _snapshot(dsn: str, branch_id: int) -> tuple[list, list]:
    with psycopg.connect(dsn) as conn:
        deals = conn.execute(
            f"SELECT {', '.join(DEAL_COLUMNS)} FROM deals WHERE branch_id = %s ORDER BY id",
            (branch_id,),
        ).fetchall()
        rows = conn.execute(
            "SELECT day, rep_id, metric, value FROM daily_rollups WHERE branch_id = %s "
            "ORDER BY day, rep_id, metric",
            (branch_id,),
        ).fetchall()
    return deals, rows


def verify_with_rebuild(dsn: str, env: dict, code: str) -> str:
    """Compare one branch's loaded deals and rollups with ``hq-server rebuild --inline``."""
    from ingest import hq

    with psycopg.connect(dsn) as conn:
        branch_id = conn.execute(
            "SELECT id FROM org_units WHERE code = %s AND active_to IS NULL", (code,)
        ).fetchone()[0]
    loaded = _snapshot(dsn, branch_id)
    started = time.monotonic()
    out = hq(env, "rebuild", "--branch", code, "--inline").strip()
    rebuilt = _snapshot(dsn, branch_id)
    problems = []
    for name, before, after in zip(("deals", "rollups"), loaded, rebuilt, strict=True):
        if before != after:
            diff = set(before) ^ set(after)
            problems.append(
                f"{name}: {len(before)} loaded vs {len(after)} rebuilt, "
                f"{len(diff)} rows differ, e.g. {sorted(diff, key=str)[:2]}"
            )
    if problems:
        raise click.ClickException(f"branch {code}: load differs from rebuild: {problems}")
    return (
        f"branch {code}: {len(loaded[0]):,} deals and {len(loaded[1]):,} rollup rows equal "
        f"to `hq-server rebuild --inline` ({out}, {time.monotonic() - started:.1f}s)"
    )


# --------------------------------------------------------------------------- the plain GROUP BY

# The projection's rules written over raw events: which stage an event sets, and the
# furthest funnel stage it shows (every event shows the first; a lost deal stays reached).
_STAGE_SET = (
    "CASE e.type WHEN 'deal.opened' THEN coalesce(e.payload->'data'->>'stage', 'lead') "
    "WHEN 'lead.created' THEN 'lead' WHEN 'deal.stage_changed' THEN e.payload->'data'->>'to' "
    "WHEN 'deal.won' THEN 'won' WHEN 'deal.lost' THEN 'lost' END"
)
_SETTERS = "('deal.opened', 'lead.created', 'deal.stage_changed', 'deal.won', 'deal.lost')"
_OPENERS = "('deal.opened', 'lead.created')"
_LATEST = "ORDER BY e.occurred_at DESC, e.id DESC"  # the projection's last-writer order


def _order(name: str) -> int:
    return STAGES_BY_NAME[name].order


def _reached_sql() -> str:
    orders = " ".join(f"WHEN '{s.name}' THEN {s.order}" for s in DEFAULT_STAGES if not s.is_lost)
    return (
        "CASE WHEN e.type = 'visit.logged' THEN CASE WHEN "
        f"(e.payload->'data'->>'decision_maker_met')::boolean THEN {_order('visit')} ELSE 1 END "
        f"WHEN e.type = 'quote.issued' THEN {_order('quote')} "
        f"ELSE CASE {_STAGE_SET} {orders} ELSE 1 END END"
    )


def _flag(name: str) -> str:
    return f"(e.payload->'data'->>'{name}')::boolean"


# Rollup metric -> the raw events it counts (as in hq_server/metrics/rollups.py).
EVENT_COUNTS = {
    "visits": "e.type = 'visit.logged'",
    "visits_decision_maker": f"e.type = 'visit.logged' AND {_flag('decision_maker_met')}",
    "calls": "e.type = 'call.logged'",
    "calls_connected": f"e.type = 'call.logged' AND {_flag('connected')}",
    "calls_decision_maker": f"e.type = 'call.logged' AND {_flag('reached_decision_maker')}",
    "calls_presented": f"e.type = 'call.logged' AND {_flag('presented')}",
    "quotes": "e.type = 'quote.issued'",
    "deals_opened": "e.type = 'deal.opened'",
    "deals_won": "e.type = 'deal.won'",
    "deals_lost": "e.type = 'deal.lost'",
    "payments_failed": "e.type = 'payment.failed'",
}
WON_AMOUNT = (
    "coalesce(sum((e.payload->'data'->>'amount')::numeric) FILTER (WHERE e.type = 'deal.won'), 0)"
)
FUNNEL_ACTIVITY = (
    "visits",
    "visits_decision_maker",
    "calls",
    "calls_connected",
    "quotes",
    "deals_opened",
    "deals_won",
    "deals_lost",
    "won_amount",
)
NODE_ACTIVITY = (
    "visits",
    "visits_decision_maker",
    "calls",
    "calls_connected",
    "calls_decision_maker",
    "calls_presented",
    "quotes",
    "deals_won",
    "payments_failed",
)
_NODES = {"rep": "p.code", "branch": "b.code", "region": "r.code"}
_NODE_JOINS = (
    "JOIN org_units b ON b.id = {t}.branch_id LEFT JOIN org_units r ON r.id = b.parent_id "
    "LEFT JOIN reps p ON p.id = {t}.rep_id"
)


def _activity_cols(names: tuple[str, ...]) -> str:
    return ", ".join(
        WON_AMOUNT if n == "won_amount" else f"count(*) FILTER (WHERE {EVENT_COUNTS[n]})"
        for n in names
    )


def _bucket(interval: str) -> str:
    """SQL: the histogram bucket (``deal_rollups.EDGES``) of an interval, in days."""
    edges = ", ".join(repr(float(e)) for e in deal_rollups.EDGES)
    return (
        f"greatest(width_bucket(extract(epoch FROM {interval})::float8 / 86400, "
        f"ARRAY[{edges}]::float8[]) - 1, 0)"
    )


def _median(buckets: list[int] | None) -> float | None:
    """The median the reports estimate from these buckets (None when there are none)."""
    if not buckets:
        return None
    days = deal_rollups.median(Counter(buckets))
    return None if days is None else round(days, 2)


def naive_funnel(conn, branches: list[int], start: date, end: date) -> dict:
    """Return the funnel's numbers from raw events: first-reach times per deal, then counts."""
    params = {"b": branches, "s": start, "e": end, "tz": TZ_NAME}
    reach = _reached_sql()
    first_reach = ", ".join(
        f"min(e.occurred_at) FILTER (WHERE {reach} >= {_order(s)}) AS at_{s}" for s in FUNNEL
    )
    cohort = "opened_day BETWEEN %(s)s AND %(e)s"
    pairs = list(itertools.pairwise(FUNNEL))
    cols = [f"count(*) FILTER (WHERE {cohort})"]
    cols += [f"count(*) FILTER (WHERE {cohort} AND at_{s} IS NOT NULL)" for s in FUNNEL]
    cols += [
        f"array_agg({_bucket(f'at_{b} - at_{a}')}) FILTER (WHERE {cohort} AND at_{b} IS NOT NULL)"
        for a, b in pairs
    ]
    cols += [
        f"count(*) FILTER (WHERE (at_{s} AT TIME ZONE %(tz)s)::date BETWEEN %(s)s AND %(e)s)"
        for s in FUNNEL
    ]
    row = conn.execute(
        f"""
        WITH per_deal AS (
          SELECT e.deal_id, min(e.local_day) FILTER (WHERE e.type IN {_OPENERS}) AS opened_day,
                 {first_reach}
          FROM events e
          WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted' AND e.deal_id IS NOT NULL
          GROUP BY e.deal_id)
        SELECT {", ".join(cols)} FROM per_deal
        """,
        params,
    ).fetchone()
    activity = conn.execute(
        f"SELECT {_activity_cols(FUNNEL_ACTIVITY)} FROM events e "
        "WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted' "
        "AND e.local_day BETWEEN %(s)s AND %(e)s",
        params,
    ).fetchone()
    n = len(FUNNEL)
    days = [_median(v) for v in row[1 + n : 1 + n + len(pairs)]]
    totals = {m: float(v) for m, v in zip(FUNNEL_ACTIVITY, activity, strict=True)}
    return {
        "deals_opened": row[0],
        "reached": dict(zip(FUNNEL, row[1 : 1 + n], strict=True)),
        "days_to_next": [*days, None],
        "flow": dict(zip(FUNNEL, row[1 + n + len(pairs) :], strict=True)),
        # A deal closes once, with its last stage-setting event (true of the generated data).
        "won": int(totals["deals_won"]),
        "lost": int(totals["deals_lost"]),
        "activity": totals,
    }


def _deal_figures(conn, branches: list[int], periods: list[tuple[date, date]], by: str) -> dict:
    """Return per node the deal figures of each period, from each deal's events."""
    open_stages = [s for s in FUNNEL if s != "won"]
    params: dict = {"b": branches}
    cols = []
    for i, (start, end) in enumerate(periods):
        params[f"s{i}"], params[f"e{i}"] = start, end
        window = f"BETWEEN %(s{i})s AND %(e{i})s"
        won = f"d.stage = 'won' AND d.closed_day {window}"
        cols += [
            f"count(*) FILTER (WHERE d.opened_day {window})",
            f"count(*) FILTER (WHERE {won})",
            f"count(*) FILTER (WHERE d.stage = 'lost' AND d.closed_day {window})",
            f"coalesce(sum(d.amount) FILTER (WHERE {won}), 0)",
        ]
    cycle = "extract(epoch FROM d.closed_at - d.opened_at) / 86400"
    won_now = "d.stage = 'won' AND d.closed_day BETWEEN %(s0)s AND %(e0)s"
    cols += [
        f"avg({cycle}) FILTER (WHERE {won_now})",
        f"array_agg({_bucket('d.closed_at - d.opened_at')}) FILTER (WHERE {won_now})",
    ]
    cols += [f"count(*) FILTER (WHERE d.stage = '{s}')" for s in open_stages]
    rows = conn.execute(
        f"""
        WITH per_deal AS (
          SELECT e.deal_id, e.branch_id,
            (array_agg(e.rep_id {_LATEST}) FILTER (WHERE e.type IN {_OPENERS}))[1] AS rep_id,
            min(e.occurred_at) FILTER (WHERE e.type IN {_OPENERS}) AS opened_at,
            min(e.local_day) FILTER (WHERE e.type IN {_OPENERS}) AS opened_day,
            (array_agg({_STAGE_SET} {_LATEST}) FILTER (WHERE e.type IN {_SETTERS}))[1] AS stage,
            (array_agg(e.occurred_at {_LATEST}) FILTER (WHERE e.type IN {_SETTERS}))[1]
              AS closed_at,
            (array_agg(e.local_day {_LATEST}) FILTER (WHERE e.type IN {_SETTERS}))[1]
              AS closed_day,
            (array_agg((e.payload->'data'->>'amount')::numeric {_LATEST})
               FILTER (WHERE e.type IN ('deal.opened', 'deal.updated', 'deal.won')
                       AND e.payload->'data' ? 'amount'))[1] AS amount
          FROM events e
          WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted' AND e.deal_id IS NOT NULL
          GROUP BY e.deal_id, e.branch_id)
        SELECT {_NODES[by]}, {", ".join(cols)}
        FROM per_deal d {_NODE_JOINS.format(t="d")}
        GROUP BY 1
        """,
        params,
    ).fetchall()
    out = {}
    for r in rows:
        per_period = [r[1 + 4 * i : 5 + 4 * i] for i in range(len(periods))]
        tail = r[1 + 4 * len(periods) :]
        out[r[0]] = {
            "periods": [
                {"deals_opened": o, "won": w, "lost": lo, "won_amount": float(a)}
                for o, w, lo, a in per_period
            ],
            "cycle_days": {
                "mean": None if tail[0] is None else round(float(tail[0]), 4),
                "median": _median(tail[1]),
            },
            "open_by_stage": dict(zip(open_stages, tail[2:], strict=True)),
        }
    return out


def naive_metrics(conn, branches: list[int], start: date, end: date, by: str) -> dict:
    """Return per-node deal figures, activity and changes from raw events only."""
    days = (end - start).days + 1
    previous = (start - timedelta(days=days), start - timedelta(days=1))
    deals = _deal_figures(conn, branches, [(start, end), previous], by)
    activity = {}
    for node, *values in conn.execute(
        f"SELECT {_NODES[by]}, {_activity_cols(NODE_ACTIVITY)} FROM events e "
        f"{_NODE_JOINS.format(t='e')} WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted' "
        "AND e.local_day BETWEEN %(s)s AND %(e)s GROUP BY 1",
        {"b": branches, "s": start, "e": end},
    ):
        activity[node] = {m: float(v) for m, v in zip(NODE_ACTIVITY, values, strict=True) if v}
    out = {}
    for node in set(deals) | set(activity):
        d = deals.get(node)
        if d:
            now, before = d["periods"]
            before = {**before, "win_rate": win_rate(before["won"], before["lost"])}
        else:
            now, before = {"deals_opened": 0, "won": 0, "lost": 0, "won_amount": 0.0}, {}
        row = {
            **now,
            "win_rate": win_rate(now["won"], now["lost"]),
            "open_by_stage": d["open_by_stage"] if d else {},
            "cycle_days": d["cycle_days"] if d else {"mean": None, "median": None},
            "activity": activity.get(node, {}),
        }
        keys = ("won", "won_amount", "win_rate", "deals_opened")
        row["change"] = {k: delta(row[k], before.get(k)) for k in keys}
        out[node] = row
    return out


def naive_lagging(conn, branches: list[int], week_start: date, week_end: date) -> dict:
    """Return the week's per-rep and per-branch counts behind the rate and visit checks."""
    params = {"b": branches, "s": week_start, "e": week_end}
    reps = conn.execute(
        f"""
        SELECT e.branch_id, e.rep_id,
               count(*) FILTER (WHERE e.type = 'deal.won'),
               count(*) FILTER (WHERE e.type = 'deal.lost'),
               count(*) FILTER (WHERE e.type = 'visit.logged' AND {_flag("decision_maker_met")}),
               count(*) FILTER (WHERE e.type = 'visit.logged'),
               count(*) FILTER (WHERE e.type = 'call.logged' AND {_flag("connected")}),
               count(*) FILTER (WHERE e.type = 'call.logged')
        FROM events e
        WHERE e.branch_id = ANY(%(b)s) AND e.status = 'counted'
          AND e.local_day BETWEEN %(s)s AND %(e)s
        GROUP BY 1, 2
        """,
        params,
    ).fetchall()
    quoted = conn.execute(
        f"""
        WITH closed AS (
          SELECT deal_id, branch_id, type FROM events
          WHERE branch_id = ANY(%(b)s) AND status = 'counted'
            AND type IN ('deal.won', 'deal.lost') AND local_day BETWEEN %(s)s AND %(e)s),
        reached AS (
          SELECT e.deal_id, max({_reached_sql()}) AS reached FROM events e
          WHERE e.deal_id IN (SELECT deal_id FROM closed) AND e.status = 'counted'
          GROUP BY e.deal_id)
        SELECT c.branch_id,
               count(*) FILTER (WHERE r.reached >= {_order("quote")} AND c.type = 'deal.won'),
               count(*) FILTER (WHERE r.reached >= {_order("quote")})
        FROM closed c JOIN reached r USING (deal_id) GROUP BY 1
        """,
        params,
    ).fetchall()
    per_branch: dict[int, dict[str, list[int]]] = defaultdict(
        lambda: {m: [0, 0] for m in ("win_rate", "quote_to_won", "dm_visit_rate", "contact_rate")}
    )
    visits = {}
    for bid, rep, won, lost, dm, vis, connected, calls in reps:
        counts = per_branch[bid]
        for metric, x, n in (
            ("win_rate", won, won + lost),
            ("dm_visit_rate", dm, vis),
            ("contact_rate", connected, calls),
        ):
            counts[metric][0] += x
            counts[metric][1] += n
        visits[rep] = vis
    for bid, x, n in quoted:
        per_branch[bid]["quote_to_won"] = [x, n]
    return {"branches": dict(per_branch), "rep_visits": visits}


# --------------------------------------------------------------------------- comparing answers


def compare_funnel(app: dict, naive: dict) -> tuple[list[str], str]:
    """Return the differences between the API's funnel and the naive one, and what was compared."""
    cohort = app["cohort"]["stages"]
    pairs = [("deals_opened", app["cohort"]["deals_opened"], naive["deals_opened"])]
    pairs += [(f"cohort {s['stage']}", s["reached"], naive["reached"][s["stage"]]) for s in cohort]
    pairs += [
        (f"days {s['stage']}->next", s.get("median_days_to_next"), days)
        for s, days in zip(cohort, naive["days_to_next"], strict=True)
    ]
    flow = app.get("flow", {}).get("stages", [])
    pairs += [(f"flow {s['stage']}", s["reached"], naive["flow"][s["stage"]]) for s in flow]
    pairs += [(k, app["closed"][k], naive[k]) for k in ("won", "lost")]
    pairs += [(f"activity {k}", app["activity"].get(k), v) for k, v in naive["activity"].items()]
    diffs = [f"{name}: api {a} vs events {b}" for name, a, b in pairs if a != b]
    return diffs, f"{len(pairs)} numbers"


def compare_metrics(app: dict, naive: dict) -> tuple[list[str], str]:
    """Return the differences between the API's per-node metrics and the naive ones."""
    rows = {r["node"]: r for r in app["rows"]}
    diffs, compared = [], 0
    paging = app["paging"]
    # A page holds the next rows in node-code order, out of ``total``.
    page = sorted(naive, key=str)[paging["offset"] :][: len(rows)]
    if list(rows) != page or paging["total"] != len(naive):
        diffs.append(
            f"nodes: {len(rows)} of {paging['total']} from the api vs {len(naive)} from events"
        )
    for node in sorted(set(rows) & set(naive), key=str):
        for key, value in naive[node].items():
            compared += 1
            if rows[node].get(key) != value:
                diffs.append(f"{node} {key}: api {rows[node].get(key)} vs events {value}")
    return diffs, f"{len(rows)} rows, {compared} figures"


def compare_lagging(
    app: dict, naive: dict, week_start: date, units: dict, reps: dict
) -> tuple[list[str], str]:
    """Check the counts behind this week's peer and visit flags against the naive counts."""
    diffs, checked = [], 0
    for flag in app["flags"]:
        if flag["period"]["from"] != week_start.isoformat():
            continue
        if flag["check"] == "peers":
            members = units[flag["unit"]]["branches"]
            counts = [naive["branches"].get(b, {}).get(flag["metric"], (0, 0)) for b in members]
            want = (sum(c[0] for c in counts), sum(c[1] for c in counts))
            got = (flag["details"]["x"], flag["n"])
        elif flag["check"] == "poisson":
            want, got = naive["rep_visits"].get(reps[flag["unit"]], 0), flag["value"]
        else:
            continue
        checked += 1
        if got != want:
            diffs.append(f"{flag['check']} {flag['metric']} {flag['unit']}: api {got} vs {want}")
    return diffs, f"{checked} of {len(app['flags'])} flags"


# --------------------------------------------------------------------------- measuring


def make_app(dsn: str, redis_url: str, instance: Path):
    from config.settings import Settings
    from hq_server import create_app

    return create_app(
        Settings.from_env(
            {
                "DATABASE_URL": dsn,
                "REDIS_URL": redis_url,
                "LOG_LEVEL": "WARNING",
                "HQ_INSTANCE_DIR": str(instance),
            }
        )
    )


def compact(app, dsn: str) -> None:
    """Run the hourly job that folds settled region and HQ stripes, as a deployment would."""
    from hq_server.services.compaction import compact_unit_rollups

    started = time.monotonic()
    with app.app_context():
        done = compact_unit_rollups()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) unit_rollups, weekly_unit_rollups")
    log(f"compact_rollups: {done} in {time.monotonic() - started:.1f}s")


def user_token(app) -> str:
    """Return a fresh token of the benchmark's hq_manager user (created on first use)."""
    from sqlalchemy import select

    from hq_server.extensions import db
    from hq_server.models import User
    from hq_server.services.auth import add_user, issue_user_token

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "bench-hq"))
        user = user or add_user("bench-hq", "hq_manager", "HQ", "Bench HQ manager")
        token = issue_user_token(user, "bench reports")
        db.session.commit()
    return token


def time_scans(app, scans: int) -> list[float]:
    """Run ``scan_lagging()`` and commit, ``scans`` times; return the seconds of each."""
    from hq_server.extensions import db
    from hq_server.services.lagging import scan_lagging

    seconds = []
    for i in range(scans):
        with app.app_context():
            started = time.perf_counter()
            found = scan_lagging()
            db.session.commit()
            seconds.append(time.perf_counter() - started)
        log(f"lagging scan {i + 1}/{scans}: {seconds[-1]:.2f}s, flags {found}")
    return seconds


def time_app(client, url: str, headers: dict, warmups: int, repeats: int) -> tuple[list, dict]:
    """Return the seconds of ``repeats`` GETs after ``warmups``, and the last answer."""
    samples = []
    for i in range(warmups + repeats):
        started = time.perf_counter()
        resp = client.get(url, headers=headers)
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            raise click.ClickException(f"GET {url}: {resp.status_code} {resp.get_data(True)[:500]}")
        if i >= warmups:
            samples.append(elapsed)
    return samples, resp.get_json()


def time_naive(conn, fn, args: tuple, repeats: int) -> tuple[list, dict]:
    """Return the seconds of ``repeats`` runs of ``fn(conn, *args)`` after one warm-up."""
    samples, answer = [], None
    for i in range(1 + repeats):
        started = time.perf_counter()
        answer = fn(conn, *args)
        if i:
            samples.append(time.perf_counter() - started)
    return samples, answer


def org_units(dsn: str) -> tuple[dict, dict]:
    """Return active units by code (kind, path, branch ids under it) and rep ids by code."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT code, kind, path, id FROM org_units WHERE active_to IS NULL ORDER BY code"
        ).fetchall()
        reps = dict(conn.execute("SELECT code, id FROM reps").fetchall())
    units = {}
    for code, kind, path, _ in rows:
        under = [i for _, k, p, i in rows if k == "branch" and p.startswith(path)]
        units[code] = {"kind": kind, "path": path, "branches": under}
    return units, reps


def pick_branch(dsn: str, region: str, units: dict, week_start: date) -> str:
    """Return the branch of ``region`` with the most peer flags this week (then by code)."""
    with psycopg.connect(dsn) as conn:
        counts = dict(
            conn.execute(
                "SELECT unit_code, count(*) FROM lagging_flags WHERE unit_kind = 'branch' "
                "AND \"check\" = 'peers' AND period_start = %s AND unit_path LIKE %s "
                "GROUP BY 1",
                (week_start, units[region]["path"] + "%"),
            ).fetchall()
        )
    codes = [
        c
        for c, u in units.items()
        if u["kind"] == "branch" and u["path"].startswith(units[region]["path"])
    ]
    return min(codes, key=lambda c: (-counts.get(c, 0), c))


PAGE = 100  # rows per metrics page, as the console and API clients read them


def cases(units: dict, unit_codes: list[str], today: date, week) -> list[dict]:
    """Return the reads to time: per unit, two funnels, two metrics and the lagging list."""
    out = []
    for code in unit_codes:
        b = units[code]["branches"]
        for days in (30, 90):
            start = today - timedelta(days=days - 1)
            out.append(
                {
                    "name": f"funnel {days}d",
                    "unit": code,
                    "kind": "funnel",
                    "url": f"/api/v1/funnel?unit={code}&from={start}&to={today}",
                    "naive": (naive_funnel, (b, start, today)),
                }
            )
        start = today - timedelta(days=29)
        for by in ("branch", "rep"):
            out.append(
                {
                    "name": f"metrics by {by}",
                    "page": PAGE,
                    "unit": code,
                    "kind": "metrics",
                    "url": f"/api/v1/metrics?unit={code}&from={start}&to={today}&by={by}"
                    f"&limit={PAGE}",
                    "naive": (naive_metrics, (b, start, today, by)),
                }
            )
        out.append(
            {
                "name": "lagging",
                "unit": code,
                "kind": "lagging",
                "url": f"/api/v1/lagging?unit={code}&from={start}&to={today}",
                "naive": (naive_lagging, (b, week.start, week.end)),
            }
        )
    return out


def explain_slowest(app, client, url: str, headers: dict, dsn: str) -> str:
    """Return EXPLAIN (ANALYZE, BUFFERS) of the slowest statement one GET of ``url`` runs."""
    from sqlalchemy import event

    from hq_server.extensions import db

    statements = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        started = conn.info["bench_started"].pop()
        statements.append((time.perf_counter() - started, statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        client.get(url, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    seconds, statement, parameters = max(statements, key=lambda s: s[0])
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).fetchall()
    shown = {
        k: (f"<{len(v)} ids>" if isinstance(v, list) and len(v) > 5 else v)
        for k, v in (parameters or {}).items()
    }
    lines = [
        f"{len(statements)} statements; slowest {seconds * 1000:.1f} ms:",
        " ".join(statement.split()),
        f"parameters: {shown}",
        *(r[0] for r in plan),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def report(
    load: dict, verified: str, scans: list[float], results: list[dict], explain: str, size: str
) -> tuple[float, float, float]:
    """Print the tables; return the worst API p95, the worst baseline p95 and the scan median."""
    if load:
        print(
            f"load: org {load['org_s']:.1f}s; generate + COPY {load['generate_copy_s']:.0f}s "
            f"({load['events'] / load['generate_copy_s']:,.0f} events/s); keys and indexes "
            f"{load['keys_s']:.0f}s; VACUUM ANALYZE {load['vacuum_analyze_s']:.0f}s"
        )
        print(
            f"loaded: {load['events']:,} events, {load['deals']:,} deals, "
            f"{load['rollups']:,} daily_rollups rows; database {size}"
        )
    if verified:
        print(f"verified: {verified}")
    scan_median = statistics.median(scans)
    print(
        f"lagging job (scan_lagging over all branches): "
        f"{', '.join(f'{s:.2f}' for s in scans)} s, median {scan_median:.2f} s (target <= 5 s)"
    )
    head = ("read", "unit", "api p50", "api p95", "events p50", "events p95", "ratio", "answers")
    rows = [head]
    for r in results:
        rows.append(
            (
                r["name"],
                r["unit"],
                f"{r['p50'] * 1000:.1f}",
                f"{r['p95'] * 1000:.1f}",
                f"{r['naive_p50'] * 1000:.1f}",
                f"{r['naive_p95'] * 1000:.1f}",
                f"{r['naive_p95'] / r['p95']:.1f}",
                f"{'OK' if not r['diffs'] else 'MISMATCH'} ({r['checked']})",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    print(
        "\nms per read; api = Flask test client in process, events = plain GROUP BY over "
        "events with psycopg; ratio = events p95 / api p95"
    )
    for row in rows:
        print(
            "  ".join(
                str(v).ljust(w) if i < 2 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    missed = [f"{r['name']} {r['unit']}" for r in results if r["p95"] > 0.050]
    print(f"p95 over 50 ms: {', '.join(missed) if missed else 'none'}")
    if explain:
        print(f"\nslowest read, EXPLAIN (ANALYZE, BUFFERS) of its slowest statement: {explain}")
    worst = max(r["p95"] for r in results)
    naive_worst = max(r["naive_p95"] for r in results)
    return worst, naive_worst, scan_median


# --------------------------------------------------------------------------- main


def measure(app, dsn: str, opts: dict) -> tuple[list[dict], str]:
    """Time every read against its baseline; return the results and the slowest read's plan."""
    from hq_server.services.lagging import Week

    token = user_token(app)
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    units, reps = org_units(dsn)
    week = Week.finished_before(datetime.now(UTC).date())  # the week scan_lagging judges
    region = opts["region"] or min(c for c, u in units.items() if u["kind"] == "region")
    branch = opts["branch"] or pick_branch(dsn, region, units, week.start)
    log(f"reads for HQ, {region} ({len(units[region]['branches'])} branches) and {branch}")
    results = []
    # The baseline runs with the server's session settings (HQ_PG_OPTIONS' default).
    with psycopg.connect(
        dsn, autocommit=True, prepare_threshold=None, options="-c jit=off -c work_mem=32MB"
    ) as conn:
        for case in cases(units, ["HQ", region, branch], date.today(), week):
            samples, answer = time_app(
                client, case["url"], headers, opts["warmups"], opts["repeats"]
            )
            fn, args = case["naive"]
            naive_samples, naive = time_naive(conn, fn, args, opts["naive_repeats"])
            if case["kind"] == "funnel":
                diffs, checked = compare_funnel(answer, naive)
            elif case["kind"] == "metrics":
                diffs, checked = compare_metrics(answer, naive)
            else:
                diffs, checked = compare_lagging(answer, naive, week.start, units, reps)
            result = {
                **case,
                "p50": percentile(samples, 0.5),
                "p95": percentile(samples, 0.95),
                "naive_p50": percentile(naive_samples, 0.5),
                "naive_p95": percentile(naive_samples, 0.95),
                "diffs": diffs,
                "checked": checked,
            }
            results.append(result)
            log(
                f"{case['name']:>17} {case['unit']:<6} api p50 {result['p50'] * 1000:8.1f} ms "
                f"p95 {result['p95'] * 1000:8.1f} | events p50 {result['naive_p50'] * 1000:9.1f}"
                f" p95 {result['naive_p95'] * 1000:9.1f} | "
                f"{'OK' if not diffs else 'MISMATCH'} ({checked})"
            )
            for d in diffs[:5]:
                log(f"    {d}")
    explain = ""
    if opts["explain"]:
        slowest = max(results, key=lambda r: r["p95"])
        explain = f"{slowest['name']} {slowest['unit']}\n" + explain_slowest(
            app, client, slowest["url"], headers, dsn
        )
    return results, explain


@click.command()
@click.option("--events", default=10_000_000, show_default=True, help="events to generate")
@click.option("--regions", default=10, show_default=True)
@click.option("--branches-per-region", default=100, show_default=True)
@click.option("--reps-per-branch", default=10, show_default=True)
@click.option("--days", default=365, show_default=True, help="history, in calendar days")
@click.option("--seed", default=1, show_default=True)
@click.option("--jobs", default=2, show_default=True, help="generator processes")
@click.option("--warmups", default=3, show_default=True, help="untimed requests per read")
@click.option("--repeats", default=30, show_default=True, help="timed requests per read")
@click.option(
    "--naive-repeats",
    default=5,
    show_default=True,
    help="timed baseline runs per read (after one warm-up)",
)
@click.option("--scans", default=3, show_default=True, help="lagging job runs (median)")
@click.option("--region", default=None, help="region to read (default: the first)")
@click.option(
    "--branch",
    default=None,
    help="branch to read (default: the region's branch with most peer flags)",
)
@click.option(
    "--verify-branch",
    default="BR0001",
    show_default=True,
    help="branch whose load is compared with `hq-server rebuild --inline`",
)
@click.option(
    "--explain/--no-explain",
    default=True,
    show_default=True,
    help="print EXPLAIN ANALYZE of the slowest read's slowest statement",
)
@click.option(
    "--reuse",
    is_flag=True,
    help="measure the database as it is: no drop, no load, no rebuild check",
)
@click.option(
    "--database-url",
    default="postgresql:///hq_bench_reports",
    show_default=True,
    help="libpq URL of the benchmark database; it is DROPPED and recreated (unless --reuse)",
)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
def main(**opts) -> None:
    """Benchmark funnel, metrics and lagging reads against a plain GROUP BY over events."""
    from ingest import hq, recreate_database

    dsn = opts["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    instance = Path(tempfile.mkdtemp(prefix="hq-bench-reports-"))
    env = dict(
        os.environ,
        DATABASE_URL=dsn,
        REDIS_URL=opts["redis_url"],
        HQ_INSTANCE_DIR=str(instance),
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="WARNING",
    )
    load, verified = {}, ""
    if not opts["reuse"]:
        log(f"recreating database {dsn}")
        recreate_database(dsn)
        hq(env, "db", "upgrade")
        started = time.monotonic()
        branches = create_org(
            dsn, opts["regions"], opts["branches_per_region"], opts["reps_per_branch"]
        )
        load["org_s"] = time.monotonic() - started
        log(
            f"org: {opts['regions']} regions, {len(branches)} branches, "
            f"{sum(len(b['reps']) for b in branches)} reps in {load['org_s']:.1f}s"
        )
        load.update(load_company(dsn, branches, opts))
        verified = verify_with_rebuild(dsn, env, opts["verify_branch"])
        log(f"verified {verified}")
    app = make_app(dsn, opts["redis_url"], instance)
    compact(app, dsn)
    scans = time_scans(app, opts["scans"])
    results, explain = measure(app, dsn, opts)
    with psycopg.connect(dsn) as conn:
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    shutil.rmtree(instance, ignore_errors=True)
    worst, naive_worst, scan_median = report(load, verified, scans, results, explain, size)
    failed = [r for r in results if r["diffs"]]
    if failed:
        raise click.ClickException(
            f"{len(failed)} read(s) disagree with the events: "
            + "; ".join(f"{r['name']} {r['unit']}: {r['diffs'][0]}" for r in failed)
        )
    print(
        f"RESULT p95_ms={worst * 1000:.1f} naive_p95_ms={naive_worst * 1000:.1f} "
        f"speedup={naive_worst / worst:.1f} lagging_job_s={scan_median:.2f} events={events}"
    )


if __name__ == "__main__":
    main()
