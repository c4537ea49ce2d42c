"""An agent killed with SIGKILL in the middle of a sync loses and repeats nothing."""

from __future__ import annotations

import signal
import subprocess

import pytest

from branch_agent.outbox import Outbox
from tests.e2e.checks import hq_count, verify
from tests.e2e.conftest import branch_agent, wait_for
from tests.e2e.hq import console_script
from tests.e2e.workload import build_events, queue_events

QUEUED = 5_000
REPS = ["SH01-001", "SH01-002"]


@pytest.fixture
def spawn_sync(agent_dir, tmp_path):
    """Start ``branch-agent sync --watch`` processes; any still running at the end are killed."""
    procs: list[subprocess.Popen] = []

    def spawn() -> subprocess.Popen:
        with (tmp_path / "agent.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    console_script("branch-agent"),
                    "--data-dir",
                    str(agent_dir),
                    "sync",
                    "--watch",
                    "--batch",
                    "200",
                    "--interval",
                    "0.2",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        log = tmp_path / "agent.log"
        if log.exists():
            print(log.read_text(errors="replace")[-3000:])


def test_an_agent_killed_three_times_mid_sync_delivers_every_event_exactly_once(
    app, company, hq, agent_dir, spawn_sync
):
    setup = branch_agent(agent_dir, "init", "--hq", hq.url, "--token", company.agent_tokens["SH01"])
    assert setup.returncode == 0, setup.stderr
    with Outbox(agent_dir) as outbox:
        recorded = queue_events(outbox, build_events(outbox, QUEUED, REPS, seed=11))

    at_kill = []
    # Kill after the first push landed, then a third and two thirds of the way through.
    for landed in (1, QUEUED // 3, 2 * QUEUED // 3):
        proc = spawn_sync()
        wait_for(lambda n=landed: hq_count(app) >= n, 30, f"{landed} events at HQ")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        with Outbox(agent_dir) as outbox:
            counts = outbox.counts()
        at_kill.append((hq_count(app), counts))
        # Killed mid-sync: work was left for the next run.
        assert counts["pending"] + counts["sending"] > 0, at_kill

    proc = spawn_sync()
    with Outbox(agent_dir) as outbox:
        wait_for(lambda: outbox.counts()["synced"] == QUEUED, 60, "the outbox to drain", 0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0

    with Outbox(agent_dir) as outbox:
        verdict = verify(app, outbox, "SH01", recorded)
        attempts = outbox.conn.execute("SELECT max(attempts) FROM outbox").fetchone()[0]
    assert verdict.problems == {}, at_kill
    # At least one kill left a batch in flight, which the next start pushed again.
    assert any(counts["sending"] for _, counts in at_kill), at_kill
    assert verdict.queued == QUEUED
    assert attempts >= 2
