"""End-to-end fixtures: a real ``hq-server serve`` process and branch agents on disk."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import reset_tables
from tests.e2e.hq import HQProcess, console_script, free_port
from tests.factories import Company

AGENT_TIMEOUT = 60.0


@pytest.fixture
def company(app) -> Company:
    """Empty tables, then the small test company (SH01, HZ01 in EAST; CD01 in WEST)."""
    reset_tables(app)
    return Company.create(app)


@pytest.fixture
def hq_process(services, company, tmp_path_factory):
    """An HQ server process on a free port, not started yet; always stopped at the end."""
    instance = tmp_path_factory.mktemp("hq-instance")
    env = services.child_env()
    env.update(HQ_INSTANCE_DIR=str(instance), HQ_QUEUE=services.queue_name, LOG_LEVEL="WARNING")
    server = HQProcess(env, free_port(), instance / "server.log")
    try:
        yield server
    finally:
        server.stop()
        print(f"--- hq-server log ---\n{server.log_tail()}")


@pytest.fixture
def hq(hq_process) -> HQProcess:
    """A running HQ server process."""
    hq_process.start()
    return hq_process


def branch_agent(data_dir: Path, *args: str, timeout: float = AGENT_TIMEOUT):
    """Run one ``branch-agent`` command to its end and return the finished process."""
    return subprocess.run(
        [console_script("branch-agent"), "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_for(condition, timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def agent_dir(tmp_path) -> Path:
    """The data dir of one branch agent."""
    return tmp_path / "agent"
