"""The agent's SQLite store: the only module that touches it.

WAL journal with ``synchronous=FULL``: a recorded event is on disk before the
staff see "saved", so a power cut or ``kill -9`` right after loses nothing
(NORMAL could lose the last transactions on power loss, and an entry typed at
the desk cannot be typed again from memory).

States: pending -> sending -> synced | rejected; a person may discard a
rejected event or replace it with a corrected one. Rows left in ``sending``
by a crash go back to pending: HQ answers ``duplicate`` for any it had stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import orjson

from shared.events import content_hash

DB_NAME = "agent.sqlite3"
STATES = ("pending", "sending", "synced", "rejected", "discarded")


def utcnow() -> str:
    """Return the current UTC time as ISO text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class StoreError(RuntimeError):
    """The agent's store cannot be opened; the message says which file and why."""


class Outbox:
    """A connection to one agent's store."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / DB_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = "it is a file" if data_dir.is_file() else exc.strerror
            raise StoreError(f"cannot use {data_dir} as the data dir: {reason}") from exc
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self._upgrade()
            schema = resources.files("branch_agent").joinpath("schema.sql").read_text()
            self.conn.executescript(schema)
        except sqlite3.DatabaseError as exc:  # not an agent's store, or a damaged one
            self.conn.close()
            raise StoreError(
                f"{self.path} is not a readable agent store ({exc}); it is left as it is: "
                "move it aside to start a new one, and keep it, since it may hold queued events"
            ) from exc

    def _upgrade(self) -> None:
        """Bring a store made by an older agent up to the current schema."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(outbox)")}
        if columns and "verdicts" not in columns:
            self.conn.execute("ALTER TABLE outbox ADD COLUMN verdicts TEXT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # settings and cache -------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Return a stored setting."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values: str | None) -> None:
        """Store settings (None deletes one)."""
        with self._tx():
            for key, value in values.items():
                if value is None:
                    self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    self.conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, str(value)),
                    )

    def get_cache(self, key: str, default=None):
        """Return what the last pull stored under ``key`` (decoded JSON)."""
        row = self.conn.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else default

    def set_cache(self, **values) -> None:
        """Store pulled data as JSON."""
        now = utcnow()
        with self._tx():
            for key, value in values.items():
                self.conn.execute(
                    "INSERT INTO cache (key, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (key, orjson.dumps(value).decode(), now),
                )

    # recording ----------------------------------------------------------

    def _tx(self):
        return _Transaction(self.conn)

    def add(self, event: dict, source: str = "", verdicts: list | None = None) -> tuple[int, bool]:
        """Queue ``event`` (without ``seq``); return ``(seq, added)``.

        The seq is assigned in the same transaction that stores the event. An
        event whose id is already queued is not added again (``added`` False).
        """
        with self._tx():
            return self._add(event, source, verdicts)

    def add_many(self, events: Iterable[dict], source: str = "") -> list[tuple[int, bool]]:
        """Queue several events in one transaction."""
        with self._tx():
            return [self._add(event, source) for event in events]

    def _add(self, event: dict, source: str, verdicts: list | None = None) -> tuple[int, bool]:
        existing = self.conn.execute(
            "SELECT seq FROM outbox WHERE id = ?", (event["id"],)
        ).fetchone()
        if existing:
            return existing[0], False
        cur = self.conn.execute(
            "INSERT INTO outbox (id, type, rep, deal, occurred_at, body, content_hash, "
            "created_at, source, verdicts) VALUES (?, ?, ?, ?, ?, '', x'', ?, ?, ?)",
            (
                event["id"],
                event["type"],
                event["rep"],
                event.get("deal"),
                event["occurred_at"],
                utcnow(),
                source,
                orjson.dumps(verdicts).decode() if verdicts else None,
            ),
        )
        seq = cur.lastrowid
        body = {**event, "seq": seq}
        self.conn.execute(
            "UPDATE outbox SET body = ?, content_hash = ? WHERE seq = ?",
            (orjson.dumps(body).decode(), content_hash(body), seq),
        )
        return seq, True

    # syncing ------------------------------------------------------------

    def recover(self) -> int:
        """Put events a crash left in ``sending`` back to pending; return how many."""
        with self._tx():
            return self.conn.execute(
                "UPDATE outbox SET state = 'pending' WHERE state = 'sending'"
            ).rowcount

    def claim(self, limit: int) -> list[dict]:
        """Mark up to ``limit`` pending events as sending and return their bodies, oldest first."""
        with self._tx():
            rows = self.conn.execute(
                "SELECT seq, body FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            if rows:
                self.conn.execute(
                    "UPDATE outbox SET state = 'sending', attempts = attempts + 1 "
                    f"WHERE seq IN ({','.join('?' * len(rows))})",
                    [r["seq"] for r in rows],
                )
        return [orjson.loads(r["body"]) for r in rows]

    def release(self, events: list[dict]) -> None:
        """Put claimed events back to pending (the push failed)."""
        with self._tx():
            self.conn.executemany(
                "UPDATE outbox SET state = 'pending' WHERE id = ? AND state = 'sending'",
                [(e["id"],) for e in events],
            )

    def settle(self, results: list[dict]) -> dict[str, int]:
        """Apply HQ's per-event results: accepted/duplicate -> synced, rejected -> rejected."""
        now = utcnow()
        counts = {"synced": 0, "rejected": 0}
        with self._tx():
            for result in results:
                if result["status"] in ("accepted", "duplicate"):
                    self.conn.execute(
                        "UPDATE outbox SET state = 'synced', synced_at = ?, hq_result = NULL "
                        "WHERE id = ? AND state = 'sending'",
                        (now, result["id"]),
                    )
                    counts["synced"] += 1
                else:
                    self.conn.execute(
                        "UPDATE outbox SET state = 'rejected', hq_result = ? "
                        "WHERE id = ? AND state = 'sending'",
                        (orjson.dumps(result).decode(), result["id"]),
                    )
                    counts["rejected"] += 1
        return counts

    # people's actions ---------------------------------------------------

    def discard(self, seq: int) -> bool:
        """Discard a rejected event (a person decided it should not reach HQ)."""
        with self._tx():
            return bool(
                self.conn.execute(
                    "UPDATE outbox SET state = 'discarded' WHERE seq = ? AND state = 'rejected'",
                    (seq,),
                ).rowcount
            )

    def replace(self, seq: int, corrected: dict) -> int:
        """Queue ``corrected`` in place of rejected event ``seq``; return the new seq."""
        with self._tx():
            row = self.conn.execute("SELECT state FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None or row["state"] != "rejected":
                raise ValueError(f"event {seq} is not a rejected event")
            new_seq, _ = self._add(corrected, "correction")
            self.conn.execute(
                "UPDATE outbox SET state = 'discarded', replaced_by = ? WHERE seq = ?",
                (corrected["id"], seq),
            )
        return new_seq

    # reading ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Return how many events are in each state."""
        rows = self.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        return {state: 0 for state in STATES} | {r[0]: r[1] for r in rows}

    def get(self, seq: int) -> dict | None:
        """Return one outbox row as a dict."""
        row = self.conn.execute("SELECT * FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return _row(row) if row else None

    def list(
        self, *, state: str | None = None, since: str | None = None, limit: int = 200
    ) -> list[dict]:
        """Return outbox rows, newest first, optionally by state or creation time."""
        sql, args = "SELECT * FROM outbox WHERE 1 = 1", []
        if state:
            sql, args = sql + " AND state = ?", [*args, state]
        if since:
            sql, args = sql + " AND created_at >= ?", [*args, since]
        rows = self.conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit]).fetchall()
        return [_row(r) for r in rows]

    def deal_events(self, deal: str, types: tuple[str, ...]) -> list[dict]:
        """Return the bodies of this deal's events of ``types`` (not discarded or rejected)."""
        rows = self.conn.execute(
            f"SELECT body FROM outbox WHERE deal = ? AND type IN ({','.join('?' * len(types))}) "
            "AND state NOT IN ('discarded', 'rejected')",
            (deal, *types),
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows if r[0]]

    def checksum(self, states: tuple[str, ...] = ("synced",)) -> tuple[int, str]:
        """Return (count, sha256 of sorted id||content_hash) over events in ``states``."""
        import hashlib

        rows = self.conn.execute(
            f"SELECT id, content_hash FROM outbox WHERE state IN ({','.join('?' * len(states))})",
            states,
        ).fetchall()
        digest = hashlib.sha256()
        for event_id, chash in sorted((r[0], bytes(r[1])) for r in rows):
            digest.update(event_id.encode() + chash)
        return len(rows), digest.hexdigest()


def _row(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["body"] = orjson.loads(out["body"]) if out["body"] else None
    out["hq_result"] = orjson.loads(out["hq_result"]) if out["hq_result"] else None
    out["verdicts"] = orjson.loads(out["verdicts"]) if out.get("verdicts") else []
    out.pop("content_hash", None)
    return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK): one writer, no lost updates."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
