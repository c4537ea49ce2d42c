"""A backlog recorded while HQ is down reaches HQ exactly once when it comes back."""

from __future__ import annotations

import re
import time

import pytest

from branch_agent.client import HQClient, TransientError
from branch_agent.outbox import Outbox
from branch_agent.sync import push_pending
from tests.e2e.checks import verify
from tests.e2e.conftest import branch_agent
from tests.e2e.workload import build_events, queue_events

BACKLOG = 10_000
REPS = ["SH01-001", "SH01-002"]


def drain_with_cli(agent_dir, timeout: float = 90.0) -> list[str]:
    """Run ``branch-agent sync`` until nothing is left to push; return each run's output."""
    outputs = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = branch_agent(agent_dir, "sync", "--batch", "1000", timeout=timeout)
        outputs.append(done.stdout + done.stderr)
        if done.returncode == 0 and "pushed 0 event(s)" in done.stdout:
            return outputs
    raise AssertionError(f"the outbox did not drain in {timeout}s:\n{outputs[-3:]}")


def test_ten_thousand_events_recorded_while_hq_is_down_all_arrive_exactly_once(
    app, company, hq_process, agent_dir
):
    setup = branch_agent(
        agent_dir, "init", "--hq", hq_process.url, "--token", company.agent_tokens["SH01"]
    )
    assert setup.returncode == 0 and "HQ not reached yet" in setup.stderr
    with Outbox(agent_dir) as outbox:
        recorded = queue_events(outbox, build_events(outbox, BACKLOG, REPS, seed=7))

    offline = branch_agent(agent_dir, "sync", "--batch", "500")
    assert offline.returncode == 1
    assert "nothing is lost" in offline.stderr
    with Outbox(agent_dir) as outbox:
        assert outbox.get_meta("last_error")
        client = HQClient(hq_process.url, outbox.get_meta("token"), outbox.get_meta("agent_id"))
        try:
            with pytest.raises(TransientError):
                push_pending(outbox, client, batch_size=500)
        finally:
            client.close()
        # The first batch was claimed, the push failed, and the batch went back to the queue.
        assert outbox.counts()["pending"] == BACKLOG
        assert outbox.get(1)["attempts"] == 1

    hq_process.start()
    outputs = drain_with_cli(agent_dir)

    pushed = sum(int(n) for out in outputs for n in re.findall(r"pushed (\d+) event", out))
    assert pushed >= BACKLOG
    with Outbox(agent_dir) as outbox:
        verdict = verify(app, outbox, "SH01", recorded)
    assert verdict.problems == {}
    assert verdict.queued == BACKLOG
