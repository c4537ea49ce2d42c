"""Server-side render time of the web console's pages at the report benchmark's scale.

Run from the project root after ``bench/reports.py`` (or ``bench/pipeline.py``) has
loaded its database::

    .venv/bin/python bench/console.py

Signs in as an HQ manager and as finance through the sign-in form (Flask's test client,
in process), then times ``--repeats`` GETs of each page after ``--warmups``: the HQ
overview, a region, a branch, a rep, a deal, finance of HQ and of a region (live; and as
of a past moment), the playbook and the inbox (``--pages finance,overview``: only those).
Baseline, in the same run: the JSON API read each page is built on (``/api/v1/metrics``
by region for the overview, …), so the ratio is what the page adds (more reads, HTML,
charts' data) over the bare API read. Target: p95 ≤ 300 ms.
The last line: ``RESULT page_p95_ms=… api_p95_ms=… ratio=… pages_over_300ms=…``.
"""

from __future__ import annotations

import re
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reports import log, make_app, org_units, percentile, user_token  # noqa: E402


def sign_in(app, role: str, scope: str) -> object:
    """Return a test client signed in as a fresh user of ``role`` scoped to ``scope``."""
    from hq_server.extensions import db
    from hq_server.services.auth import add_user

    password = secrets.token_urlsafe(12)
    name = f"bench-console-{role}-{secrets.token_hex(3)}"
    with app.app_context():
        add_user(name, role, scope, "Bench", password=password)
        db.session.commit()
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post(
        "/console/login", data={"csrf_token": token, "username": name, "password": password}
    )
    if resp.status_code != 302:
        raise click.ClickException(f"sign-in as {role} failed: {resp.status_code}")
    return client


def timed(client, url: str, warmups: int, repeats: int, headers: dict | None = None) -> list:
    samples = []
    for i in range(warmups + repeats):
        started = time.perf_counter()
        resp = client.get(url, headers=headers or {})
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            raise click.ClickException(f"GET {url}: {resp.status_code}")
        if i >= warmups:
            samples.append(elapsed)
    return samples


@click.command()
@click.option("--database-url", default="postgresql:///hq_bench_reports", show_default=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--warmups", default=2, show_default=True)
@click.option("--repeats", default=10, show_default=True)
@click.option(
    "--pages",
    "only",
    default="",
    help="comma-separated page names to time (a name also takes its variants: "
    "'finance' times every finance page); default: all",
)
def main(database_url: str, redis_url: str, warmups: int, repeats: int, only: str) -> None:
    """Time the console's pages against the API reads they are built on."""
    app = make_app(database_url, redis_url, Path(tempfile.mkdtemp(prefix="hq-bench-console-")))
    units, _ = org_units(database_url)
    region = min(c for c, u in units.items() if u["kind"] == "region")
    branch = min(
        c
        for c, u in units.items()
        if u["kind"] == "branch" and u["path"].startswith(units[region]["path"])
    )
    with psycopg.connect(database_url) as conn:
        rep, deal = conn.execute(
            "SELECT p.code, d.id FROM deals d JOIN reps p ON p.id = d.rep_id "
            "JOIN org_units b ON b.id = d.branch_id WHERE b.code = %s "
            "ORDER BY d.event_count DESC LIMIT 1",
            (branch,),
        ).fetchone()
    hq = sign_in(app, "hq_manager", "HQ")
    finance = sign_in(app, "finance", "HQ")
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {user_token(app)}"}
    today = date.today()
    start = today - timedelta(days=29)
    period = f"from={start}&to={today}"
    past = (datetime.now(UTC) - timedelta(days=7)).replace(microsecond=0).isoformat()
    past_q = past.replace("+", "%2B")
    pages = [
        ("overview", hq, "/console/overview", f"/api/v1/metrics?unit=HQ&{period}&by=region"),
        (
            "region",
            hq,
            f"/console/regions/{region}",
            f"/api/v1/metrics?unit={region}&{period}&by=branch",
        ),
        (
            "branch",
            hq,
            f"/console/branches/{branch}",
            f"/api/v1/metrics?unit={branch}&{period}&by=rep",
        ),
        ("rep", hq, f"/console/reps/{rep}", f"/api/v1/metrics?unit={branch}&{period}&by=rep"),
        ("deal", hq, f"/console/deals/{deal}", f"/api/v1/pipeline?unit={branch}"),
        ("finance", finance, "/console/finance", "/api/v1/pipeline?unit=HQ"),
        (
            "finance as-of",
            finance,
            f"/console/finance?at={past_q}",
            f"/api/v1/pipeline?unit=HQ&at={past_q}",
        ),
        (
            "finance region",
            finance,
            f"/console/finance?unit={region}",
            f"/api/v1/pipeline?unit={region}",
        ),
        (
            "finance region as-of",
            finance,
            f"/console/finance?unit={region}&at={past_q}",
            f"/api/v1/pipeline?unit={region}&at={past_q}",
        ),
        ("playbook", hq, "/console/playbook", "/api/v1/playbooks"),
        ("inbox", hq, "/console/inbox", "/api/v1/inbox"),
    ]
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if wanted:
        pages = [p for p in pages if any(p[0] == w or p[0].startswith(f"{w} ") for w in wanted)]
        if not pages:
            raise click.ClickException(f"no page named {only!r}")
    rows = []
    for name, client, url, base in pages:
        page = timed(client, url, warmups, repeats)
        baseline = timed(api, base, warmups, repeats, bearer)
        rows.append((name, url, page, baseline))
        log(
            f"{name:>20}: page p95 {percentile(page, 0.95) * 1000:8.1f} ms | api p95 "
            f"{percentile(baseline, 0.95) * 1000:8.1f} ms"
        )
    print(f"\nconsole pages at {database_url} ({repeats} timed GETs each, in process)")
    print(f"{'page':<20} {'p50':>9} {'p95':>9} {'api p50':>9} {'api p95':>9} {'ratio':>6}")
    for name, _, page, baseline in rows:
        p95, b95 = percentile(page, 0.95), percentile(baseline, 0.95)
        print(
            f"{name:<20} {percentile(page, 0.5) * 1000:>7.1f}ms {p95 * 1000:>7.1f}ms "
            f"{percentile(baseline, 0.5) * 1000:>7.1f}ms {b95 * 1000:>7.1f}ms {p95 / b95:>6.2f}"
        )
    worst = max(rows, key=lambda r: percentile(r[2], 0.95))
    over = sum(1 for r in rows if percentile(r[2], 0.95) > 0.3)
    p95, b95 = percentile(worst[2], 0.95), percentile(worst[3], 0.95)
    print(
        f"RESULT page_p95_ms={p95 * 1000:.1f} api_p95_ms={b95 * 1000:.1f} "
        f"ratio={p95 / b95:.2f} pages_over_300ms={over} worst={worst[0].replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
