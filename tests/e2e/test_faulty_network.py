"""Dropped, delayed, refused and cut-off requests between agent and HQ lose and repeat nothing."""

from __future__ import annotations

import threading
import time

from branch_agent.client import HQClient
from branch_agent.outbox import Outbox
from branch_agent.sync import SyncLoop
from tests.e2e.checks import verify
from tests.e2e.proxy import FaultProxy
from tests.e2e.workload import build_events, queue_events

QUEUED = 3_000
REPS = ["SH01-001", "SH01-002"]
FAULT_WEIGHTS = {"drop": 0.15, "delay": 0.15, "error": 0.15, "cut": 0.2, "pass": 0.35}


def test_events_pushed_through_a_faulty_network_arrive_exactly_once(app, company, hq, agent_dir):
    with Outbox(agent_dir) as outbox:
        outbox.set_meta(agent_id="agent-sh01-faulty")
        recorded = queue_events(outbox, build_events(outbox, QUEUED, REPS, seed=3))

    with FaultProxy(hq.port, FAULT_WEIGHTS, seed=20261122) as proxy:
        client = HQClient(proxy.url, company.agent_tokens["SH01"], "agent-sh01-faulty", timeout=15)
        loop = SyncLoop(lambda: Outbox(agent_dir), client, batch_size=200, interval=0.05, cap=0.5)
        thread = threading.Thread(target=loop.run, name="sync-loop")
        thread.start()
        try:
            with Outbox(agent_dir) as outbox:
                deadline = time.monotonic() + 60
                while outbox.counts()["synced"] < QUEUED and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            loop.stop()
            thread.join(20)
            client.close()
        assert not thread.is_alive()

    with Outbox(agent_dir) as outbox:
        verdict = verify(app, outbox, "SH01", recorded)
    assert verdict.problems == {}, (proxy.injected, loop.failures)
    # The schedule must really have hurt: every kind of fault happened, and at least
    # once HQ stored a batch whose answer the agent never heard.
    assert set(proxy.injected) == set(FAULT_WEIGHTS), proxy.injected
    assert proxy.committed_then_cut >= 1, proxy.injected
