"""The sync loop: push the outbox in batches, pull HQ's state, back off when HQ is away."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from branch_agent.client import HQClient, PermanentError, TransientError
from branch_agent.outbox import Outbox, utcnow
from shared.protocol import MAX_BATCH_EVENTS

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 300.0, rng=random) -> float:
    """Return a 'full jitter' delay: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2 ** min(attempt, 30)))


@dataclass
class SyncReport:
    """What one pass did."""

    pushed: int = 0
    synced: int = 0
    rejected: int = 0
    batches: int = 0
    pulled: bool = False
    errors: list[str] = field(default_factory=list)


def pull_once(outbox: Outbox, client: HQClient) -> dict:
    """Pull HQ's state into the cache; record clock skew and the playbook version."""
    sent = time.time()
    state = client.pull(outbox.get_meta("pull_cursor"), outbox.get_meta("playbook_version"))
    received = time.time()
    server = datetime.fromisoformat(state["server_time"]).timestamp()
    skew = server - (sent + received) / 2
    outbox.set_cache(branch=state["branch"], reps=state["reps"], stages=state["stages"])
    if state.get("playbook"):
        outbox.set_cache(playbook=state["playbook"])
        outbox.set_meta(playbook_version=str(state["playbook"]["version"]))
    leads = {lead["deal"]: lead for lead in outbox.get_cache("leads", [])}
    leads.update({lead["deal"]: lead for lead in state.get("leads", [])})
    outbox.set_cache(leads=list(leads.values()), targets=state.get("targets", []))
    if state.get("decisions"):
        _apply_decisions(outbox, state["decisions"])
    outbox.set_meta(pull_cursor=state["cursor"], last_pull_at=utcnow(), clock_skew_s=f"{skew:.3f}")
    return state


def _apply_decisions(outbox: Outbox, decisions: list[dict]) -> None:
    """Remember HQ's approval decisions on this branch's held entries."""
    known = {d["event_id"]: d for d in outbox.get_cache("decisions", [])}
    known.update({d["event_id"]: d for d in decisions})
    outbox.set_cache(decisions=list(known.values())[-500:])


def push_pending(
    outbox: Outbox, client: HQClient, *, batch_size: int = 500, max_batches: int | None = None
) -> SyncReport:
    """Push pending events oldest first until none are left (or ``max_batches``)."""
    report = SyncReport()
    batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS))
    while max_batches is None or report.batches < max_batches:
        events = outbox.claim(batch_size)
        if not events:
            break
        try:
            answer = client.push(events)
        except (TransientError, PermanentError):
            outbox.release(events)
            raise
        counts = outbox.settle(answer["results"])
        report.batches += 1
        report.pushed += len(events)
        report.synced += counts["synced"]
        report.rejected += counts["rejected"]
        outbox.set_meta(last_push_at=utcnow(), last_error=None, last_error_at=None)
    return report


class SyncLoop:
    """Push and pull forever, backing off with full jitter while HQ is unreachable."""

    def __init__(
        self,
        outbox_factory,
        client: HQClient,
        *,
        batch_size: int = 500,
        interval: float = 5.0,
        pull_every: float = 60.0,
        cap: float = 300.0,
    ):
        self.outbox_factory = outbox_factory
        self.client = client
        self.batch_size = batch_size
        self.interval = interval
        self.pull_every = pull_every
        self.cap = cap
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.failures = 0
        self.last_report: SyncReport | None = None

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def wake(self) -> None:
        """Sync now (e.g. right after staff recorded something)."""
        self.wake_event.set()

    def run(self) -> None:
        """Loop until ``stop``; never give up on HQ."""
        with self.outbox_factory() as outbox:
            recovered = outbox.recover()
            if recovered:
                log.info("%d event(s) left in flight by a stop go back to the queue", recovered)
            last_pull = 0.0
            while not self.stop_event.is_set():
                delay = self.interval
                try:
                    if time.monotonic() - last_pull >= self.pull_every:
                        pull_once(outbox, self.client)
                        last_pull = time.monotonic()
                    self.last_report = push_pending(outbox, self.client, batch_size=self.batch_size)
                    self.failures = 0
                except TransientError as exc:
                    self.failures += 1
                    delay = backoff_delay(self.failures, cap=self.cap)
                    if exc.retry_after is not None:
                        delay = max(delay, exc.retry_after)
                    self._note_error(outbox, exc, delay)
                except PermanentError as exc:
                    # A bad token or a refused body needs a person; keep trying slowly.
                    self.failures += 1
                    delay = self.cap
                    self._note_error(outbox, exc, delay)
                self.wake_event.wait(delay)
                self.wake_event.clear()

    def _note_error(self, outbox: Outbox, exc: Exception, delay: float) -> None:
        log.warning("sync failed (%s); next try in %.1fs", exc, delay)
        outbox.set_meta(last_error=str(exc)[:500], last_error_at=utcnow())

    def status(self) -> dict:
        """Return the loop's state for the staff page."""
        return {
            "failures": self.failures,
            "running": not self.stop_event.is_set(),
            "now": datetime.now(UTC).isoformat(),
        }
