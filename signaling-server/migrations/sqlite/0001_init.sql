-- Hearth schema, SQLite. Every integer is BIGINT (ids are snowflakes, times are Unix ms,
-- flags are 0/1) so that the same queries run unchanged on PostgreSQL.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id             BIGINT PRIMARY KEY,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    avatar         TEXT,
    is_admin       BIGINT NOT NULL DEFAULT 0,
    removed_at     BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE invites (
    code        TEXT PRIMARY KEY,
    created_by  BIGINT NOT NULL,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT,
    revoked     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

-- Refresh tokens are stored as SHA-256 hashes. A login is a family; each refresh replaces
-- the token with its successor, and reusing a spent token revokes the family.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    user_id     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE channels (
    id          BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    position    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);

-- Members of private channels (DMs, group DMs) only; group channels are open to everyone.
CREATE TABLE channel_members (
    channel_id  BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_members_user ON channel_members (user_id);

CREATE TABLE messages (
    id          BIGINT PRIMARY KEY,
    channel_id  BIGINT NOT NULL,
    author_id   BIGINT NOT NULL,
    nonce       TEXT NOT NULL,
    content     TEXT NOT NULL,
    reply_to    BIGINT,
    mentions    TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    edited_at   BIGINT,
    deleted     BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX messages_author_nonce ON messages (author_id, nonce);
CREATE INDEX messages_channel_id ON messages (channel_id, id);

CREATE TABLE mentions (
    user_id     BIGINT NOT NULL,
    channel_id  BIGINT NOT NULL,
    message_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel_id, message_id)
);

CREATE TABLE reactions (
    message_id  BIGINT NOT NULL,
    emoji       TEXT NOT NULL,
    user_id     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE read_states (
    user_id       BIGINT NOT NULL,
    channel_id    BIGINT NOT NULL,
    last_read_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
