-- The branch agent's durable store: the outbox of events, settings, and what HQ sent.

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per recorded event. seq is the per-agent sequence number HQ sees:
-- AUTOINCREMENT never reuses a number, even after a crash or a delete.
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    rep TEXT NOT NULL,
    deal TEXT,
    occurred_at TEXT NOT NULL,
    body TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'synced', 'rejected', 'discarded')),
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    synced_at TEXT,
    hq_result TEXT,
    source TEXT,
    replaced_by TEXT,
    verdicts TEXT
);

CREATE INDEX IF NOT EXISTS outbox_state_seq ON outbox (state, seq);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
CREATE INDEX IF NOT EXISTS outbox_deal ON outbox (deal, type);

-- What the last pull brought: branch, reps, stages, playbook, leads.
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
