"""Backoff with full jitter and Retry-After parsing."""

from __future__ import annotations

import random

import requests
from hypothesis import given
from hypothesis import strategies as st

from branch_agent.client import _retry_after
from branch_agent.sync import backoff_delay


@given(st.integers(0, 100), st.floats(0.1, 10), st.floats(1, 600))
def test_full_jitter_stays_between_zero_and_the_capped_exponential(attempt, base, cap):
    delay = backoff_delay(attempt, base=base, cap=cap, rng=random.Random(attempt))
    assert 0 <= delay <= min(cap, base * 2 ** min(attempt, 30))


def test_jitter_spreads_agents_out():
    delays = {round(backoff_delay(6, rng=random.Random(seed)), 3) for seed in range(50)}
    assert len(delays) > 40  # not a thundering herd of identical retries


def test_retry_after_in_seconds_or_as_a_date():
    response = requests.Response()
    response.headers["Retry-After"] = "7"
    assert _retry_after(response) == 7.0
    response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert _retry_after(response) == 0.0  # a date in the past: now
    response.headers["Retry-After"] = "soon"
    assert _retry_after(response) is None


def test_an_error_page_that_is_not_json_from_hq_is_a_transient_failure(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import pytest

    from branch_agent.client import HQClient, TransientError

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = HQClient(f"http://127.0.0.1:{server.server_port}", "hqa_x", "agent")
    try:
        with pytest.raises(TransientError, match="503"):
            client.push([{"id": "x"}])
    finally:
        client.close()
        server.shutdown()
        server.server_close()
