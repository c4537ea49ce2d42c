"""``hq-server demo``: the whole stack on one machine, with a demo company loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

DATASET_HINTS = ("../shared/datasets/maven-crm", "shared/datasets/maven-crm")


def find_dataset(start: Path) -> Path | None:
    """Find the bundled sample data set beside or above ``start``."""
    for base in (start, *start.parents):
        for hint in DATASET_HINTS:
            candidate = (base / hint).resolve()
            if (candidate / "sales_teams.csv").exists():
                return candidate
    return None


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder with sales_teams.csv (default: the shared data set)",
)
@click.option("--bind", default=None, help="host:port to serve on (default 127.0.0.1:8000)")
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="start the server and a worker after loading",
)
@click.pass_obj
def demo(ctx, data_dir: Path | None, bind: str | None, serve: bool) -> None:
    """Start embedded services, load the demo company, print tokens, and serve."""
    from hq_server.cli import import_org_file, upgrade_database

    data_dir = data_dir or find_dataset(Path.cwd()) or find_dataset(Path(__file__).parent)
    if data_dir is None:
        raise click.ClickException("sample data not found; pass --data DIR with sales_teams.csv")
    click.echo("starting PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set)…")
    app = ctx.app
    upgrade_database(app)
    report = import_org_file(app, data_dir / "sales_teams.csv")
    click.echo(
        f"org loaded from {data_dir / 'sales_teams.csv'}: "
        f"{report.created['region']} new region(s), {report.created['branch']} new "
        f"branch(es), {report.created['rep']} new rep(s)"
    )
    tokens = _demo_tokens(app)
    bind = bind or ctx.settings.bind
    url = f"http://{bind}"
    click.echo("")
    click.echo(f"HQ server: {url}   (OpenAPI: {url}/api/v1/openapi.json)")
    click.echo(f"HQ manager token (user 'demo-hq'): {tokens['user']}")
    click.echo("branch agent tokens:")
    for code, token in tokens["agents"].items():
        click.echo(f"  {code:<22} {token}")
    click.echo("")
    click.echo("try:")
    click.echo(f"  curl -H 'Authorization: Bearer {tokens['user']}' '{url}/api/v1/funnel?unit=HQ'")
    if not serve:
        return
    worker = subprocess.Popen(
        [sys.executable, "-m", "hq_server.cli", "worker"], env=ctx.settings.child_env()
    )
    try:
        from hq_server.wsgi import run_gunicorn

        run_gunicorn(app, bind, ctx.settings.web_concurrency)
    finally:
        worker.terminate()
        worker.wait(30)


def _demo_tokens(app) -> dict:
    """Issue fresh demo tokens: one HQ manager and one agent per branch (old ones revoked)."""
    from sqlalchemy import func, select, update

    from hq_server.extensions import db
    from hq_server.models import ApiToken, OrgUnit, User
    from hq_server.services.auth import add_user, issue_agent_token, issue_user_token

    with app.app_context():
        db.session.execute(
            update(ApiToken).where(ApiToken.label.startswith("demo")).values(revoked_at=func.now())
        )
        user = db.session.scalar(select(User).where(User.username == "demo-hq"))
        if user is None:
            user = add_user("demo-hq", "hq_manager", "HQ", "Demo HQ manager")
        tokens = {"user": issue_user_token(user, "demo hq manager"), "agents": {}}
        branches = db.session.scalars(
            select(OrgUnit.code)
            .where(OrgUnit.kind == "branch", OrgUnit.active_to.is_(None))
            .order_by(OrgUnit.code)
        )
        for code in branches:
            tokens["agents"][code] = issue_agent_token(code, f"demo agent {code}")
        db.session.commit()
    return tokens
