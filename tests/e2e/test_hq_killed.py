"""HQ killed with SIGKILL in the middle of a push loses and repeats nothing."""

from __future__ import annotations

import signal
import threading
import time

from branch_agent.client import HQClient
from branch_agent.outbox import Outbox
from branch_agent.sync import SyncLoop
from tests.e2e.checks import hq_count, verify
from tests.e2e.conftest import wait_for
from tests.e2e.workload import build_events, queue_events

QUEUED = 4_000
REPS = ["SH01-001", "SH01-002"]


def test_hq_killed_mid_push_and_restarted_stores_every_event_exactly_once(
    app, company, hq, agent_dir
):
    with Outbox(agent_dir) as outbox:
        recorded = queue_events(outbox, build_events(outbox, QUEUED, REPS, seed=5))
    client = HQClient(hq.url, company.agent_tokens["SH01"], "agent-sh01", timeout=10)
    loop = SyncLoop(lambda: Outbox(agent_dir), client, batch_size=250, interval=0.05, cap=0.5)
    thread = threading.Thread(target=loop.run, name="sync-loop")
    thread.start()
    try:
        wait_for(lambda: hq_count(app) > 0, 30, "the first push to land")
        hq.stop(signal.SIGKILL)
        stored_while_down = hq_count(app)
        time.sleep(0.5)  # the agent keeps trying against a closed port
        assert hq_count(app) == stored_while_down
        hq.start()
        with Outbox(agent_dir) as outbox:
            wait_for(lambda: outbox.counts()["synced"] == QUEUED, 60, "the outbox to drain")
    finally:
        loop.stop()
        thread.join(20)
        client.close()
    assert not thread.is_alive()

    with Outbox(agent_dir) as outbox:
        verdict = verify(app, outbox, "SH01", recorded)
    assert verdict.problems == {}
    assert stored_while_down < QUEUED
    assert loop.failures == 0  # it recovered and its last pass went through
