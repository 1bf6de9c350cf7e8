-- Several hearth-server processes on one database (src/cluster).

-- One row per live process: its leased worker id (the worker bits of the ids it makes), a
-- random token proving the lease is still its own, and its heartbeat in the database's clock.
CREATE TABLE nodes (
    id           BIGINT PRIMARY KEY,
    token        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Notes too large for a NOTIFY payload (8000 bytes), read by id; pruned after a minute.
CREATE TABLE bus_spill (
    id         BIGSERIAL PRIMARY KEY,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
