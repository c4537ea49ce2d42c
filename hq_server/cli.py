"""The ``hq-server`` command: database, org, tokens, users, server, worker, demo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from config.settings import Settings, SettingsError


class Context:
    """Settings resolved once per command; the app is built on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from hq_server import create_app
            from hq_server.embedded import resolve_services

            self.settings = resolve_services(self.settings)
            self._app = create_app(self.settings)
        return self._app

    def close(self) -> None:
        """Release the app's database connections."""
        if self._app is not None:
            from hq_server.extensions import db

            with self._app.app_context():
                db.engine.dispose()


pass_ctx = click.make_pass_decorator(Context)


def _unreachable(exc: Exception) -> str | None:
    """Say which service a command could not use, when ``exc`` is that and not a bug."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, OperationalError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        # No state: the connection failed; 08 connection, 28 authorization, 3D no such
        # database, 57 the server shutting down.
        if not state or state[:2] in ("08", "28", "3D", "57"):
            return f"cannot use the database: {str(exc.orig).strip()}"
    if isinstance(exc, RedisConnectionError):
        return f"cannot reach Redis: {exc}"
    return None


class _Main(click.Group):
    """The command group: a service that cannot be reached is named, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = _unreachable(exc)
            if message is None:
                raise
            raise click.ClickException(message) from exc


@click.group(cls=_Main)
@click.pass_context
def main(ctx: click.Context) -> None:
    """HQ sync and oversight server.

    Configured from the environment (DATABASE_URL, REDIS_URL, SECRET_KEY,
    HQ_INSTANCE_DIR, ...); with no URLs it runs embedded PostgreSQL and Redis.
    """
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


@main.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    upgrade_database(ctx.app, revision)
    click.echo(f"database at {revision}")


def upgrade_database(app, revision: str = "head") -> None:
    """Run Alembic's upgrade inside ``app``."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(revision=revision)


@main.group()
def org() -> None:
    """Load and inspect the org tree."""


@org.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", default=None, help="the file's encoding if not UTF-8, e.g. gb18030")
@pass_ctx
def org_import(ctx: Context, file: Path, encoding: str | None) -> None:
    """Create or update regions, branches and reps from a CSV or YAML FILE."""
    report = import_org_file(ctx.app, file, encoding)
    click.echo(
        f"created: {report.created['region']} region(s), {report.created['branch']} "
        f"branch(es), {report.created['rep']} rep(s); moved: {len(report.moved)}"
    )


def import_org_file(app, file: Path, encoding: str | None = None):
    """Import ``file`` in one transaction; exit with the row errors if it is invalid."""
    from hq_server.extensions import db as database
    from hq_server.services.org import OrgImportError, import_org, read_org_file

    with app.app_context():
        try:
            rows = read_org_file(file, encoding)
            report = import_org(rows, app.config["SETTINGS"].default_timezone)
        except OrgImportError as exc:
            database.session.rollback()
            click.echo(f"error: {exc}", err=True)
            for where, errors in exc.errors.items():
                click.echo(f"  {where}: {json.dumps(errors, ensure_ascii=False)}", err=True)
            raise SystemExit(2) from exc
        database.session.commit()
    return report


@org.command("list")
@pass_ctx
def org_list(ctx: Context) -> None:
    """Print the active org tree."""
    from sqlalchemy import select

    from hq_server.extensions import db as database
    from hq_server.models import OrgUnit

    with ctx.app.app_context():
        units = database.session.scalars(
            select(OrgUnit).where(OrgUnit.active_to.is_(None)).order_by(OrgUnit.path)
        )
        for unit in units:
            click.echo(
                f"{'  ' * unit.level}{unit.code}  {unit.name} ({unit.kind}, {unit.timezone})"
            )


@main.command("agent-token")
@click.argument("branch")
@click.option("--label", default="")
@pass_ctx
def agent_token(ctx: Context, branch: str, label: str) -> None:
    """Issue a token for the agent of BRANCH (printed once; only its hash is kept)."""
    from hq_server.extensions import db as database
    from hq_server.services.auth import AuthError, issue_agent_token

    with ctx.app.app_context():
        try:
            token = issue_agent_token(branch, label)
        except AuthError as exc:
            raise click.ClickException(str(exc)) from exc
        database.session.commit()
    click.echo(token)


@main.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(
        ["staff", "branch_manager", "region_manager", "hq_manager", "finance", "admin"]
    ),
)
@click.option("--scope", "scope_code", required=True, help="org unit code, e.g. HQ or EAST")
@click.option("--name", "display_name", default="")
@click.option("--password", default=None, help="for web login (prompted if '-')")
@click.option("--email", default=None, help="where notifications are e-mailed (SMTP_URL)")
@click.option(
    "--token/--no-token",
    default=True,
    show_default=True,
    help="also issue an API token (printed once)",
)
@pass_ctx
def user_add(
    ctx: Context,
    username: str,
    role: str,
    scope_code: str,
    display_name: str,
    password: str | None,
    email: str | None,
    token: bool,
) -> None:
    """Create user USERNAME with a role and a scope."""
    from hq_server.extensions import db as database
    from hq_server.services.auth import AuthError, add_user, issue_user_token

    if password == "-":
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with ctx.app.app_context():
        try:
            account = add_user(username, role, scope_code, display_name, password, email)
            secret = issue_user_token(account) if token else None
        except AuthError as exc:
            raise click.ClickException(str(exc)) from exc
        database.session.commit()
    click.echo(f"user {username} ({role}, scope {scope_code}) created")
    if secret:
        click.echo(secret)


@user.command("set-password")
@click.argument("username")
@click.option("--password", default="-", help="the new password (prompted if '-')")
@pass_ctx
def user_set_password(ctx: Context, username: str, password: str) -> None:
    """Set USERNAME's web password (also lifts a lockout; other sessions end)."""
    from hq_server.extensions import db as database
    from hq_server.web import accounts

    if password == "-":
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with ctx.app.app_context():
        account = accounts.find_user(username)
        if account is None:
            raise click.ClickException(f"no user {username!r}")
        try:
            accounts.set_password(account, password)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        database.session.commit()
    click.echo(f"password of {username} set")


@user.command("list")
@pass_ctx
def user_list(ctx: Context) -> None:
    """List users: role, scope, whether they may sign in, lockouts."""
    from hq_server.web import accounts

    with ctx.app.app_context():
        for account in accounts.list_users():
            state = "active" if account.active else "inactive"
            if not account.password_hash:
                state += ", no password"
            if account.locked_until is not None:
                state += f", locked until {account.locked_until:%Y-%m-%d %H:%M %Z}"
            click.echo(
                f"{account.username:<24} {account.role:<15} {account.scope_unit.code:<16} {state}"
            )


@user.command("deactivate")
@click.argument("username")
@pass_ctx
def user_deactivate(ctx: Context, username: str) -> None:
    """Stop USERNAME from signing in (their sessions end at once)."""
    from hq_server.extensions import db as database
    from hq_server.web import accounts

    with ctx.app.app_context():
        account = accounts.find_user(username)
        if account is None:
            raise click.ClickException(f"no user {username!r}")
        accounts.deactivate(account)
        database.session.commit()
    click.echo(f"{username} deactivated")


@main.group()
def playbook() -> None:
    """Validate, publish and compare playbook versions."""


def _read_source(file: Path) -> str:
    """A playbook file's text (UTF-8); a file that is not text ends the command with why."""
    from shared.textfiles import TextFileError, read_text

    try:
        return read_text(file, hint="save it as UTF-8")
    except TextFileError as exc:
        raise click.ClickException(str(exc)) from exc


def _read_playbook(ctx: Context, file: Path):
    from hq_server.services import playbooks

    source = _read_source(file)
    with ctx.app.app_context():
        try:
            return source, playbooks.validate(source)
        except playbooks.PublishError as exc:
            click.echo(f"error: {exc}", err=True)
            for error in exc.errors:
                where = f"line {error['line']}: " if error.get("line") else ""
                path = f"{error['path']}: " if error.get("path") else ""
                click.echo(f"  {where}{path}{error.get('message', '')}", err=True)
            raise SystemExit(2) from exc


@playbook.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def playbook_validate(ctx: Context, file: Path) -> None:
    """Check FILE; print its errors with line numbers."""
    _, parsed = _read_playbook(ctx, file)
    click.echo(f"valid: version {parsed.version}, {len(parsed.rules)} rule(s)")


@playbook.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "by", required=True, help="who publishes (recorded in the audit trail)")
@pass_ctx
def playbook_publish(ctx: Context, file: Path, by: str) -> None:
    """Publish FILE as the new playbook version; agents get it at their next pull."""
    from hq_server.extensions import db as database
    from hq_server.services import playbooks

    source, _ = _read_playbook(ctx, file)
    with ctx.app.app_context():
        try:
            row = playbooks.publish(source, by)
        except playbooks.PublishError as exc:
            raise click.ClickException(str(exc)) from exc
        database.session.commit()
        click.echo(f"published version {row.version} by {row.published_by}")


@playbook.command("diff")
@click.argument("old", required=False)
@click.argument("new", required=False)
@pass_ctx
def playbook_diff(ctx: Context, old: str | None, new: str | None) -> None:
    """Show what changed: OLD and NEW are version numbers or files (default: last two)."""
    from sqlalchemy import select

    from hq_server.extensions import db as database
    from hq_server.models import PlaybookVersion
    from hq_server.services import playbooks

    with ctx.app.app_context():
        versions = database.session.scalars(
            select(PlaybookVersion.version).order_by(PlaybookVersion.version.desc())
        ).all()

        def source(ref: str | None, fallback_index: int) -> tuple[str, str]:
            if ref and Path(ref).exists():
                return _read_source(Path(ref)), ref
            if ref and not (ref.isascii() and ref.isdigit()):
                raise click.ClickException(f"{ref!r} is neither a version number nor a file")
            if ref:
                version = int(ref)
            else:
                version = versions[fallback_index] if len(versions) > fallback_index else None
            row = playbooks.get(version) if version in versions else None
            if row is None:
                raise click.ClickException(f"no playbook {ref or 'to compare'}")
            return row.source, f"v{row.version}"

        old_src, old_name = source(old, 1)
        new_src, new_name = source(new, 0)
    click.echo(playbooks.diff(old_src, new_src, old_name, new_name) or "no differences")


@main.group()
def fx() -> None:
    """Exchange rates into the reporting currency."""


@fx.command("set")
@click.argument("currency")
@click.argument("rate", type=click.FLOAT)
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="default today")
@click.option("--source", default="", help="where the rate comes from")
@pass_ctx
def fx_set(ctx: Context, currency: str, rate: float, day, source: str) -> None:
    """Record CURRENCY's RATE into the reporting currency for a day."""
    from datetime import date
    from decimal import Decimal

    from hq_server.extensions import db as database
    from hq_server.services import fx as rates

    with ctx.app.app_context():
        try:
            row = rates.set_rate(
                currency, day.date() if day else date.today(), Decimal(str(rate)), source
            )
        except rates.FxError as exc:
            raise click.ClickException(str(exc)) from exc
        database.session.commit()
    click.echo(f"{row['currency']} = {row['rate']} on {row['day']}")


@main.group()
def export() -> None:
    """Write reports to files."""


@export.command("pipeline")
@click.option("--unit", default="HQ", show_default=True)
@click.option("--close-from", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--close-to", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.xlsx or FILE.csv",
)
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
    default=None,
    help="a past moment (without an offset: the company's time zone)",
)
@pass_ctx
def export_pipeline(ctx: Context, unit: str, close_from, close_to, out: Path, at) -> None:
    """Write the pipeline of UNIT (all of it: the command line runs as HQ) to a file."""
    from zoneinfo import ZoneInfo

    from hq_server.services import exports
    from hq_server.services import fx as rates
    from hq_server.services import pipeline as pipelines
    from hq_server.services.pipeline_history import WindowError
    from hq_server.services.scope import OutOfScope, Principal

    hq = Principal("user", "admin", "HQ")
    lo = close_from.date() if close_from else None
    hi = close_to.date() if close_to else None
    with ctx.app.app_context():
        if at is not None and at.tzinfo is None:
            zone = ctx.app.config["SETTINGS"].default_timezone
            at = at.replace(tzinfo=ZoneInfo(zone))
        try:
            report = pipelines.pipeline(hq, unit, close_from=lo, close_to=hi, at=at)
        except OutOfScope as exc:
            raise click.ClickException(f"no active org unit with code {unit!r}") from exc
        except rates.FxError as exc:
            raise click.ClickException(f"{exc}; add it with 'hq-server fx set'") from exc
        except WindowError as exc:
            raise click.ClickException(str(exc)) from exc
        deals = None if at else pipelines.open_deals(hq, unit, lo, hi)
    xlsx = out.suffix.lower() == ".xlsx"
    try:
        out.write_bytes(
            exports.pipeline_workbook(report, deals) if xlsx else exports.pipeline_csv(report)
        )
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
    click.echo(
        f"{out}: {report['open']['count']} open deals, {report['open']['amount']} "
        f"{report['currency']} open, {report['open']['weighted']} weighted"
    )


@main.group("pipeline")
def pipeline_group() -> None:
    """The pipeline's history (as-of reads)."""


@pipeline_group.command("snapshot")
@pass_ctx
def pipeline_snapshot(ctx: Context) -> None:
    """Take the due midnight cuts now (the worker does it every hour)."""
    from hq_server.services.pipeline_history import snapshot_pipeline

    with ctx.app.app_context():
        done = snapshot_pipeline()
    click.echo(f"{done['cuts']} cuts taken, {done['rows']} snapshot rows")


@pipeline_group.command("backfill")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_ctx
def pipeline_backfill(ctx: Context, yes: bool) -> None:
    """Rebuild the pipeline history from the event log (after an upgrade, or to repair it)."""
    from sqlalchemy import text

    from hq_server.extensions import db as database
    from hq_server.services.pipeline_history import backfill, snapshot_pipeline

    if not yes:
        click.confirm("Replace the pipeline history with one rebuilt from the events?", abort=True)
    with ctx.app.app_context():
        total = database.session.execute(
            text("SELECT count(*) FROM events WHERE status = 'counted' AND deal_id IS NOT NULL")
        ).scalar()
        with click.progressbar(length=total, label="replaying deal events") as bar:
            rows = backfill(progress=bar.update)
        database.session.commit()
        done = snapshot_pipeline()
    click.echo(f"{rows} history rows written; {done['cuts']} cuts taken")


@main.command()
@click.option("--branch", default=None, help="one branch code (default: all)")
@click.option("--inline", is_flag=True, help="run now in this process instead of on RQ")
@pass_ctx
def rebuild(ctx: Context, branch: str | None, inline: bool) -> None:
    """Recompute deal projections and rollups from the event log."""
    from hq_server.extensions import db as database
    from hq_server.jobs.outbox import add_job
    from hq_server.services.rebuild import rebuild_all, rebuild_branch

    with ctx.app.app_context():
        if branch and not _is_branch(branch):
            raise click.ClickException(f"no branch with code {branch!r}")
        if inline:
            count = rebuild_branch(branch) if branch else rebuild_all()
            database.session.commit()
            click.echo(f"replayed {count} events")
            return
        add_job(f"rebuild_rollups:{branch or '*'}", "rebuild_rollups", branch=branch)
        database.session.commit()
    click.echo("rebuild queued; a worker will run it")


def _is_branch(code: str) -> bool:
    """Whether ``code`` names a branch, now or in the past (a rebuild replays every version)."""
    from sqlalchemy import select

    from hq_server.extensions import db as database
    from hq_server.models import OrgUnit

    found = select(OrgUnit.id).where(OrgUnit.code == code, OrgUnit.kind == "branch").limit(1)
    return database.session.scalar(found) is not None


@main.command()
@click.option("--bind", default=None, help="host:port (default HQ_BIND or 127.0.0.1:8000)")
@click.option("--workers", type=int, default=None, help="gunicorn workers (WEB_CONCURRENCY)")
@pass_ctx
def serve(ctx: Context, bind: str | None, workers: int | None) -> None:
    """Serve the API with gunicorn (the production server)."""
    from hq_server.wsgi import run_gunicorn

    warning = ctx.settings.secret_key_warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)
    app = ctx.app
    run_gunicorn(app, bind or ctx.settings.bind, workers or ctx.settings.web_concurrency)


@main.command()
@click.option("--burst", is_flag=True, help="run queued jobs, then exit")
@click.option(
    "--relay/--no-relay", default=True, show_default=True, help="also run the job-outbox relay"
)
@pass_ctx
def worker(ctx: Context, burst: bool, relay: bool) -> None:
    """Run an RQ worker (with its scheduler) for the app's queue."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from hq_server.jobs.queue import get_queue

    app = ctx.app
    relay_proc = None
    if relay and not burst:
        relay_proc = subprocess.Popen(
            [sys.executable, "-m", "hq_server.cli", "relay"], env=service_env(ctx.settings)
        )
    try:
        with app.app_context():
            queue = get_queue()
            rq_worker = Worker([queue], connection=queue.connection, serializer=JSONSerializer)
            rq_worker.work(burst=burst, with_scheduler=not burst)
    finally:
        if relay_proc:
            relay_proc.terminate()
            relay_proc.wait(10)


@main.command("relay")
@click.option("--interval", default=1.0, show_default=True, help="seconds between polls")
@click.option("--once", is_flag=True, help="relay what is waiting, then exit")
@pass_ctx
def relay_cmd(ctx: Context, interval: float, once: bool) -> None:
    """Hand committed job-outbox rows to RQ (and re-send ones RQ lost)."""
    from hq_server.extensions import db as database
    from hq_server.jobs.outbox import relay, schedule_periodic
    from hq_server.jobs.queue import get_queue

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with ctx.app.app_context():
        queue = get_queue()
        while not stop:
            schedule_periodic()
            database.session.commit()
            sent = relay(queue)
            if once:
                click.echo(f"relayed {sent} job(s)")
                return
            time.sleep(interval)


def service_env(settings: Settings) -> dict[str, str]:
    """Return an environment that points child processes at the same services."""
    return settings.child_env()


from hq_server.demo import demo  # noqa: E402  (registers the demo command)

main.add_command(demo)

if __name__ == "__main__":
    main()
