"""The ``branch-agent`` command: record, import, sync, status, serve."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import click
from uuid6 import uuid7

from branch_agent import __version__
from branch_agent.client import HQClient, PermanentError, TransientError
from branch_agent.outbox import Outbox, StoreError
from branch_agent.recorder import RecordError, record

DEFAULT_DIR = Path.home() / ".branch-agent"


class Agent:
    """The data dir of one agent and what lives in it."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def outbox(self) -> Outbox:
        try:
            return Outbox(self.data_dir)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc

    def client(self, outbox: Outbox) -> HQClient:
        url, token = outbox.get_meta("hq_url"), outbox.get_meta("token")
        if not url or not token:
            raise click.ClickException("not set up yet: run 'branch-agent init --hq URL --token T'")
        return HQClient(url, token, outbox.get_meta("agent_id"))


pass_agent = click.make_pass_decorator(Agent)


@click.group()
@click.version_option(__version__, prog_name="branch-agent")
@click.option(
    "--data-dir",
    envvar="BRANCH_AGENT_DIR",
    type=click.Path(path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="where the outbox and settings live",
)
@click.option("-v", "--verbose", is_flag=True, help="log sync activity")
@click.pass_context
def main(ctx: click.Context, data_dir: Path, verbose: bool) -> None:
    """Record branch activity, offline or not, and sync it to HQ."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    ctx.obj = Agent(data_dir)


_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _hq_address(ctx, param, value: str) -> str:
    """Check that ``--hq`` is an http(s) address of a host; warn when it is not encrypted."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{value!r} is not an HQ address; give it whole, e.g. https://hq.example.com"
        )
    if parts.query or parts.fragment:
        raise click.BadParameter(f"{value!r}: an HQ address has no ?query or #fragment")
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        click.echo(
            "warning: plain http: the branch token and the events travel unencrypted; "
            "use https:// outside a trusted network",
            err=True,
        )
    return value.strip().rstrip("/")


@main.command()
@click.option(
    "--hq",
    "hq_url",
    required=True,
    callback=_hq_address,
    help="HQ server URL, e.g. https://hq.example.com",
)
@click.option("--token", required=True, help="this branch's agent token (from HQ)")
@pass_agent
def init(agent: Agent, hq_url: str, token: str) -> None:
    """Set up this agent: HQ's address and the branch token; then pull once if HQ answers."""
    with agent.outbox() as outbox:
        outbox.set_meta(
            hq_url=hq_url,
            token=token,
            agent_id=outbox.get_meta("agent_id") or str(uuid7()),
        )
        agent.data_dir.joinpath("agent.sqlite3").chmod(0o600)
        try:
            from branch_agent.sync import pull_once

            state = pull_once(outbox, agent.client(outbox))
            click.echo(
                f"connected to HQ as branch {state['branch']['code']} ({len(state['reps'])} reps)"
            )
        except (TransientError, PermanentError) as exc:
            click.echo(f"saved; HQ not reached yet ({exc}). Recording works offline.", err=True)


def _record(agent: Agent, type_: str, rep: str, data: dict, **kwargs) -> None:
    with agent.outbox() as outbox:
        try:
            seq, event, verdicts = record(outbox, type_, rep, data, source="cli", **kwargs)
        except RecordError as exc:
            click.echo("not recorded:", err=True)
            for name, messages in exc.errors.items():
                click.echo(f"  {name}: {json.dumps(messages, ensure_ascii=False)}", err=True)
            raise SystemExit(2) from exc
    click.echo(
        f"queued #{seq} {type_} {event['id']}"
        + (f" deal {event['deal']}" if event.get("deal") else "")
    )
    for verdict in verdicts:
        held = " (held at HQ until fixed or approved)" if verdict["severity"] == "block" else ""
        click.echo(
            f"  playbook {verdict['rule_id']}{held}: {verdict['message']['en']} / "
            f"{verdict['message']['zh']}",
            err=True,
        )


@main.group("record")
def record_group() -> None:
    """Record one visit, call, quote or deal change."""


_common = [
    click.option("--rep", required=True, help="rep code"),
    click.option("--customer", default=None),
    click.option("--deal", default=None, help="deal id"),
    click.option(
        "--at",
        "occurred_at",
        type=click.DateTime(),
        default=None,
        help="when it happened (branch local time; default now)",
    ),
]


def common(func):
    for option in reversed(_common):
        func = option(func)
    return func


@record_group.command("visit")
@common
@click.option("--dm/--no-dm", "decision_maker_met", default=False, help="met the decision maker")
@click.option("--outcome", default=None)
@click.option("--next-step", default=None)
@pass_agent
def record_visit(agent, rep, customer, deal, occurred_at, decision_maker_met, outcome, next_step):
    """Record a customer visit."""
    _record(
        agent,
        "visit.logged",
        rep,
        {"decision_maker_met": decision_maker_met, "outcome": outcome, "next_step": next_step},
        deal=deal,
        customer=customer,
        occurred_at=occurred_at,
    )


@record_group.command("call")
@common
@click.option("--connected/--not-connected", default=True)
@click.option("--dm/--no-dm", "reached_decision_maker", default=False)
@click.option("--presented/--not-presented", default=False)
@click.option("--outcome", default=None)
@pass_agent
def record_call(
    agent, rep, customer, deal, occurred_at, connected, reached_decision_maker, presented, outcome
):
    """Record a phone call."""
    _record(
        agent,
        "call.logged",
        rep,
        {
            "connected": connected,
            "reached_decision_maker": reached_decision_maker,
            "presented": presented,
            "outcome": outcome,
        },
        deal=deal,
        customer=customer,
        occurred_at=occurred_at,
    )


@record_group.command("quote")
@common
@click.option("--amount", required=True, type=float)
@click.option("--currency", default="CNY", show_default=True)
@click.option("--discount", "discount_pct", type=float, default=None, help="percent")
@click.option("--product", "products", multiple=True)
@pass_agent
def record_quote(agent, rep, customer, deal, occurred_at, amount, currency, discount_pct, products):
    """Record a quote issued on a deal."""
    _record(
        agent,
        "quote.issued",
        rep,
        {
            "amount": amount,
            "currency": currency,
            "discount_pct": discount_pct,
            "products": list(products) or None,
        },
        deal=deal,
        customer=customer,
        occurred_at=occurred_at,
    )


@record_group.command("deal")
@common
@click.argument("action", type=click.Choice(["open", "stage", "won", "lost", "update"]))
@click.option("--name", default=None, help="deal name (open)")
@click.option("--amount", type=float, default=None)
@click.option("--currency", default=None)
@click.option("--expected-close", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--stage", default=None, help="stage to move to (stage) or start in (open)")
@click.option("--loss-reason", default=None)
@click.option("--competitor", default=None, help="competitor name (lost)")
@pass_agent
def record_deal(
    agent,
    rep,
    customer,
    deal,
    occurred_at,
    action,
    name,
    amount,
    currency,
    expected_close,
    stage,
    loss_reason,
    competitor,
):
    """Open a deal, move its stage, update it, or close it won or lost."""
    close = expected_close.date().isoformat() if expected_close else None
    type_, data = {
        "open": (
            "deal.opened",
            {
                "name": name,
                "amount": amount,
                "currency": currency or "CNY",
                "expected_close": close,
                "stage": stage,
            },
        ),
        "stage": ("deal.stage_changed", {"to": stage}),
        "update": (
            "deal.updated",
            {"amount": amount, "currency": currency, "expected_close": close},
        ),
        "won": ("deal.won", {"amount": amount, "currency": currency}),
        "lost": (
            "deal.lost",
            {
                "loss_reason": loss_reason,
                "competitor": {"name": competitor} if competitor else None,
            },
        ),
    }[action]
    _record(agent, type_, rep, data, deal=deal, customer=customer, occurred_at=occurred_at)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--undated-on",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="date to give pipeline rows that carry no date (else they are refused)",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the per-row report to this CSV",
)
@click.option("--quiet", is_flag=True, help="no per-row lines for refused rows")
@click.option("--encoding", default=None, help="the file's encoding if not UTF-8, e.g. gb18030")
@pass_agent
def import_cmd(agent: Agent, file: Path, undated_on, report_path, quiet, encoding) -> None:
    """Queue the events of a spreadsheet (CSV); every row is reported."""
    from branch_agent.importer import ImportFormatError, import_sheet, read_sheet

    with agent.outbox() as outbox:
        if not outbox.get_cache("reps"):
            click.echo(
                "warning: HQ's rep list is not known yet (no pull so far): rows of "
                "other branches will be refused by HQ at sync",
                err=True,
            )
        try:
            sheet = read_sheet(file, encoding)
            with click.progressbar(
                length=len(sheet.rows), label=f"importing {file.name}", file=sys.stderr
            ) as bar:
                report = import_sheet(
                    outbox,
                    sheet,
                    undated_on=undated_on.date() if undated_on else None,
                    progress=bar.update,
                )
        except ImportFormatError as exc:
            raise click.ClickException(str(exc)) from exc
    if not quiet:
        for row in report.rows:
            if row.status == "refused":
                click.echo(f"  line {row.line} ({row.key}): refused: {row.reason}")
    if report_path:
        _write_report(report_path, report)
    click.echo(
        f"{report.count('queued')} row(s) queued ({report.events_queued} events), "
        f"{report.count('already_queued')} already queued, "
        f"{report.count('refused')} refused, "
        f"{report.count('skipped')} of other branches skipped"
    )


def _write_report(path: Path, report) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "key", "status", "events", "reason"])
        for r in report.rows:
            writer.writerow([r.line, r.key, r.status, r.events, r.reason])


@main.command()
@click.option("--watch", is_flag=True, help="keep syncing (Ctrl-C to stop)")
@click.option("--batch", default=500, show_default=True, help="events per push (max 1000)")
@click.option("--interval", default=5.0, show_default=True, help="seconds between passes")
@pass_agent
def sync(agent: Agent, watch: bool, batch: int, interval: float) -> None:
    """Push queued events to HQ and pull HQ's state."""
    from branch_agent.sync import SyncLoop, pull_once, push_pending

    with agent.outbox() as outbox:
        client = agent.client(outbox)
        if watch:
            loop = SyncLoop(agent.outbox, client, batch_size=batch, interval=interval)
            signal.signal(signal.SIGTERM, lambda *_: loop.stop())
            try:
                loop.run()
            except KeyboardInterrupt:
                loop.stop()
            return
        outbox.recover()
        try:
            pull_once(outbox, client)
            report = push_pending(outbox, client, batch_size=batch)
        except (TransientError, PermanentError) as exc:
            outbox.set_meta(last_error=str(exc)[:500])
            raise click.ClickException(f"{exc} (nothing is lost: events stay queued)") from exc
    click.echo(
        f"pushed {report.pushed} event(s) in {report.batches} batch(es): "
        f"{report.synced} synced, {report.rejected} rejected"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_agent
def status(agent: Agent, as_json: bool) -> None:
    """Show queue depth by state, last push, last error, playbook version, clock skew."""
    with agent.outbox() as outbox:
        info = {
            "hq": outbox.get_meta("hq_url"),
            "branch": (outbox.get_cache("branch") or {}).get("code"),
            "agent_id": outbox.get_meta("agent_id"),
            "queue": outbox.counts(),
            "last_push_at": outbox.get_meta("last_push_at"),
            "last_pull_at": outbox.get_meta("last_pull_at"),
            "last_error": outbox.get_meta("last_error"),
            "last_error_at": outbox.get_meta("last_error_at"),
            "playbook_version": outbox.get_meta("playbook_version"),
            "clock_skew_s": outbox.get_meta("clock_skew_s"),
        }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "queue":
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        click.echo(f"{key:>16}: {value if value not in (None, '') else '-'}")


@main.command()
@click.option(
    "--state",
    default="rejected",
    show_default=True,
    type=click.Choice(["pending", "sending", "synced", "rejected", "discarded"]),
)
@click.option("--limit", default=50, show_default=True)
@pass_agent
def entries(agent: Agent, state: str, limit: int) -> None:
    """List queued entries by state (rejected ones with HQ's reasons)."""
    with agent.outbox() as outbox:
        for row in outbox.list(state=state, limit=limit):
            reason = row["hq_result"] or {}
            click.echo(
                f"#{row['seq']} {row['type']} {row['rep']} {row['occurred_at']} "
                f"{reason.get('code', '')} {reason.get('message', '')} "
                f"{json.dumps(reason.get('errors', {}), ensure_ascii=False)}".rstrip()
            )


@main.command()
@click.argument("seq", type=int)
@pass_agent
def discard(agent: Agent, seq: int) -> None:
    """Discard rejected entry SEQ (it will never be sent)."""
    with agent.outbox() as outbox:
        if not outbox.discard(seq):
            raise click.ClickException(f"#{seq} is not a rejected entry")
    click.echo(f"#{seq} discarded")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8600, show_default=True)
@click.option(
    "--sync/--no-sync",
    "with_sync",
    default=True,
    show_default=True,
    help="run the sync loop in the background",
)
@click.option(
    "--simulate",
    "rate",
    type=float,
    default=0.0,
    help="demo: also record about RATE plausible entries per second",
)
@pass_agent
def serve(agent: Agent, host: str, port: int, with_sync: bool, rate: float) -> None:
    """Serve the staff page (and keep syncing with HQ)."""
    from waitress import create_server

    from branch_agent import simulate
    from branch_agent.sync import SyncLoop
    from branch_agent.web import create_staff_app

    if host not in _LOCAL_HOSTS:
        click.echo(
            f"warning: the staff page has no sign-in: anyone who can reach {host}:{port} can "
            "record entries for this branch; keep it on 127.0.0.1 or behind the branch's own "
            "access control",
            err=True,
        )
    loop, stop = None, threading.Event()
    if with_sync:
        with agent.outbox() as outbox:
            client = agent.client(outbox)
        loop = SyncLoop(agent.outbox, client, interval=2.0)
    app = create_staff_app(agent.data_dir, sync_status=loop.status if loop else None)
    # The port first: when it is taken, nothing starts.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from exc
    server = create_server(app, sockets=[listener], threads=4)
    if loop:
        threading.Thread(target=loop.run, name="sync", daemon=True).start()
    if rate > 0:
        threading.Thread(
            target=simulate.run,
            args=(agent.outbox, rate, stop),
            kwargs={"on_record": loop.wake if loop else None},
            name="simulate",
            daemon=True,
        ).start()
    click.echo(f"staff page on http://{host}:{port}/")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if loop:
            loop.stop()


def _raise_interrupt(*_args) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
