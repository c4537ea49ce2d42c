"""``hq-server demo``: the whole stack on one machine, with a demo company loaded."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
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
    help="start the server, a worker and the branch agents after loading",
)
@click.option(
    "--agents/--no-agents",
    default=True,
    show_default=True,
    help="start one branch agent per branch (imports the pipeline, then live entries)",
)
@click.option(
    "--rate", default=0.3, show_default=True, help="live entries per second per branch agent"
)
@click.pass_obj
def demo(
    ctx, data_dir: Path | None, bind: str | None, serve: bool, agents: bool, rate: float
) -> None:
    """Start embedded services, load the demo company, start HQ and the branch agents."""
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
    _publish_default_playbook(app)
    _demo_rates(app)
    tokens = _demo_tokens(app)
    password, logins = _demo_console_users(app)
    bind = bind or ctx.settings.bind
    url = f"http://{bind}"
    click.echo("")
    click.echo(f"HQ server: {url}   (OpenAPI: {url}/api/v1/openapi.json)")
    click.echo(f"HQ manager token (user 'demo-hq'): {tokens['user']}")
    click.echo(f"web console: {url}/console/   (password of every login below: {password})")
    for username, role, scope in logins:
        click.echo(f"  {username:<14} {role:<15} {scope}")
    click.echo("branch agent tokens:")
    for code, token in tokens["agents"].items():
        click.echo(f"  {code:<22} {token}")
    if not serve:
        return
    env = ctx.settings.child_env()
    children = [
        _spawn(["hq_server.cli", "serve", "--bind", bind], env),
        _spawn(["hq_server.cli", "worker"], env),
    ]
    try:
        _wait_for(f"{url}/healthz")
        if agents:
            children += _start_agents(
                ctx.settings.instance_dir / "agents",
                url,
                tokens["agents"],
                data_dir / "sales_pipeline.csv",
                rate,
            )
        click.echo("")
        click.echo("try:")
        click.echo(
            f"  curl -H 'Authorization: Bearer {tokens['user']}' '{url}/api/v1/funnel?unit=HQ'"
        )
        click.echo(
            f"  curl -H 'Authorization: Bearer {tokens['user']}' "
            f"'{url}/api/v1/funnel?unit=HQ&from=2016-10-01&to=2017-12-31'"
        )
        click.echo(
            f"  {url}/console/finance  (sign in as demo-finance; 'As of' a past moment, "
            "seen as 'it had happened', reads last week's pipeline of the imported deals)"
        )
        click.echo("Ctrl-C stops everything.")
        signal.signal(signal.SIGTERM, _interrupt)
        while all(child.poll() is None for child in children[:2]):
            time.sleep(1)
        click.echo("a server process exited; stopping the demo", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        # Agents first, each gone before the next stops: none pushes to a stopped server.
        for child in reversed(children):
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _spawn(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, **kwargs)


def _wait_for(url: str, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise click.ClickException(f"{url} did not answer within {timeout:.0f}s")


def _start_agents(
    root: Path, url: str, tokens: dict, pipeline: Path, rate: float
) -> list[subprocess.Popen]:
    """Set up one agent per branch: init, import the pipeline sheet, serve with live entries."""
    procs = []
    for port, (code, token) in enumerate(sorted(tokens.items()), start=8601):
        agent = ["branch_agent.cli", "--data-dir", str(root / code)]
        subprocess.run(
            [sys.executable, "-m", *agent, "init", "--hq", url, "--token", token],
            check=True,
            capture_output=True,
        )
        if pipeline.exists():
            done = subprocess.run(
                [sys.executable, "-m", *agent, "import", str(pipeline), "--quiet"],
                capture_output=True,
                text=True,
            )
            summary = (done.stdout.strip().splitlines() or ["import failed"])[-1]
            click.echo(f"agent {code}: {summary}")
        procs.append(
            _spawn(
                [*agent, "serve", "--port", str(port), "--simulate", str(rate)],
                None,
                stdout=subprocess.DEVNULL,
            )
        )
        click.echo(f"agent {code}: staff page http://127.0.0.1:{port}/")
    return procs


def _publish_default_playbook(app) -> None:
    """Publish the default playbook once, so the demo's rules are live."""
    from importlib import resources

    from hq_server.extensions import db
    from hq_server.services import playbooks

    with app.app_context():
        if playbooks.latest() is None:
            source = resources.files("config").joinpath("playbook.default.yaml").read_text()
            row = playbooks.publish(source, "demo")
            db.session.commit()
            click.echo(
                f"default playbook v{row.version} published ({len(row.document['rules'])} rules)"
            )


def _demo_rates(app) -> None:
    """Give the sample data's currency a rate (an illustrative one, labelled as such)."""
    from datetime import date
    from decimal import Decimal

    from hq_server.extensions import db
    from hq_server.services import fx

    with app.app_context():
        if fx.reporting_currency() != "USD" and "USD" not in fx.rates_as_of(date.today()):
            fx.set_rate("USD", date(2016, 1, 1), Decimal("7.1"), "demo (illustrative)")
            db.session.commit()


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


def _demo_console_users(app) -> tuple[str, list[tuple[str, str, str]]]:
    """Give one demo user per role a fresh random password for the web console."""
    import secrets

    from sqlalchemy import select

    from hq_server.extensions import db
    from hq_server.models import OrgUnit
    from hq_server.services.auth import add_user
    from hq_server.web import accounts

    password = secrets.token_urlsafe(9)
    with app.app_context():
        units = db.session.execute(
            select(OrgUnit.code, OrgUnit.kind, OrgUnit.parent_id, OrgUnit.id)
            .where(OrgUnit.active_to.is_(None))
            .order_by(OrgUnit.code)
        ).all()
        region = next(u for u in units if u.kind == "region")
        branch = next(u for u in units if u.kind == "branch" and u.parent_id == region.id)
        logins = [
            ("demo-hq", "hq_manager", "HQ"),
            ("demo-region", "region_manager", region.code),
            ("demo-branch", "branch_manager", branch.code),
            ("demo-finance", "finance", "HQ"),
            ("demo-admin", "admin", "HQ"),
        ]
        for username, role, scope in logins:
            user = accounts.find_user(username) or add_user(username, role, scope)
            accounts.set_password(user, password)
        db.session.commit()
    return password, logins
