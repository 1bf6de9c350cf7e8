-- The local cache of one account. Bodies are the protocol's JSON, so the cache holds exactly
-- what the server sent; the columns beside them are what we look things up by.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX messages_by_channel ON messages (channel_id, id);

CREATE TABLE channels (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE members (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE read_states (
    channel_id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

-- Messages written but not yet acknowledged by the server. The nonce is the idempotency key
-- the server dedups by, so a row may be sent any number of times and lands once.
CREATE TABLE outbox (
    nonce TEXT PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    content TEXT NOT NULL,
    reply_to INTEGER,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'failed')),
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX outbox_by_time ON outbox (created_at);

-- How far back the cache of a channel is known to be complete: every message from `oldest`
-- up to the newest is cached (0: from the very beginning). No row: nothing is known.
CREATE TABLE channel_sync (
    channel_id INTEGER PRIMARY KEY,
    oldest INTEGER NOT NULL
);
