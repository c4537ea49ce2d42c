"""The agent's outbox: seq numbers, states, recovery, corrections, checksums."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from branch_agent.outbox import Outbox
from branch_agent.recorder import RecordError, build_event, record
from shared.events import content_hash

REPS = [{"code": "SH01-001", "name": "Ann"}, {"code": "SH01-002", "name": "Bo"}]


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path)
    box.set_cache(
        branch={"code": "SH01", "name": "Shanghai", "timezone": "Asia/Shanghai"}, reps=REPS
    )
    yield box
    box.close()


def _visit(outbox, rep="SH01-001"):
    return build_event(outbox, "visit.logged", rep, {"decision_maker_met": True})


def test_recorded_events_get_strictly_increasing_seq_numbers(outbox):
    seqs = [record(outbox, "call.logged", "SH01-001", {"connected": True})[0] for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    bodies = [row["body"] for row in outbox.list()]
    assert sorted(b["seq"] for b in bodies) == seqs


def test_the_stored_body_hashes_like_hq_will_hash_it(outbox):
    seq, event, _ = record(outbox, "visit.logged", "SH01-001", {"decision_maker_met": False})
    row = outbox.conn.execute("SELECT content_hash FROM outbox WHERE seq = ?", (seq,)).fetchone()
    assert bytes(row[0]) == content_hash(outbox.get(seq)["body"])
    assert outbox.get(seq)["body"] == event


def test_an_invalid_entry_is_refused_with_fields_and_nothing_is_queued(outbox):
    with pytest.raises(RecordError) as info:
        record(outbox, "quote.issued", "NOBODY", {"amount": -1, "currency": "yuan"})
    assert set(info.value.errors) == {"deal", "data", "rep"}
    assert set(info.value.errors["data"]) == {"amount", "currency"}
    assert outbox.counts()["pending"] == 0


def test_the_same_event_id_is_queued_once(outbox):
    event = _visit(outbox)
    assert outbox.add(event) == (1, True)
    assert outbox.add(event) == (1, False)
    assert outbox.counts()["pending"] == 1


def test_claim_settle_and_recover_move_events_through_their_states(outbox):
    events = [_visit(outbox) for _ in range(4)]
    outbox.add_many(events)
    claimed = outbox.claim(3)
    assert [e["seq"] for e in claimed] == [1, 2, 3]
    assert outbox.counts()["sending"] == 3
    outbox.settle(
        [
            {"index": 0, "id": events[0]["id"], "status": "accepted"},
            {"index": 1, "id": events[1]["id"], "status": "duplicate"},
            {"index": 2, "id": events[2]["id"], "status": "rejected", "code": "unknown_rep"},
        ]
    )
    counts = outbox.counts()
    assert (counts["synced"], counts["rejected"], counts["pending"]) == (2, 1, 1)
    outbox.claim(10)
    assert outbox.recover() == 1  # a crash left it in flight
    assert outbox.counts()["pending"] == 1


def test_a_rejected_event_can_be_replaced_or_discarded(outbox):
    bad, other = _visit(outbox), _visit(outbox)
    outbox.add_many([bad, other])
    outbox.claim(10)
    outbox.settle(
        [
            {"id": bad["id"], "status": "rejected", "code": "unknown_rep"},
            {"id": other["id"], "status": "rejected", "code": "unknown_rep"},
        ]
    )
    fixed = _visit(outbox, rep="SH01-002")
    new_seq = outbox.replace(1, fixed)
    assert new_seq == 3
    assert outbox.get(1)["state"] == "discarded"
    assert outbox.get(1)["replaced_by"] == fixed["id"]
    assert outbox.get(3)["state"] == "pending"
    assert outbox.discard(2) is True
    assert outbox.discard(3) is False  # only rejected entries can be discarded
    with pytest.raises(ValueError):
        outbox.replace(3, _visit(outbox))


def test_seq_numbers_are_never_reused_even_after_rows_are_deleted(outbox):
    outbox.add_many([_visit(outbox) for _ in range(3)])
    outbox.conn.execute("DELETE FROM outbox WHERE seq = 3")
    assert outbox.add(_visit(outbox))[0] == 4


def test_the_store_is_durable_and_shareable_between_connections(tmp_path, outbox):
    outbox.add(_visit(outbox))
    with Outbox(tmp_path) as second:
        assert second.counts()["pending"] == 1
    mode = outbox.conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = outbox.conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # 2 = FULL
    assert isinstance(outbox.conn, sqlite3.Connection)


def test_the_checksum_is_order_independent_and_sensitive_to_content(tmp_path, outbox):
    events = [_visit(outbox) for _ in range(5)]
    outbox.add_many(events)
    with Outbox(tmp_path / "other") as other:
        other.add_many(list(reversed(events)))
        assert other.checksum(("pending",))[0] == 5
        # Same ids, other seq numbers: the bodies differ, so the checksum must differ.
        assert other.checksum(("pending",)) != outbox.checksum(("pending",))
    assert outbox.checksum(("pending",))[0] == 5
    assert outbox.checksum(("synced",)) == (0, outbox.checksum(("synced",))[1])
    assert str(uuid.UUID(events[0]["id"])) == events[0]["id"]
