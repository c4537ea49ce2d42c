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
