-- Group administration: roles instead of an admin flag, private text and voice channels with
-- topics, bans, blocks between members, and the audit log. The group's settings (name,
-- description, icon, retention, member permissions, upload limits) are rows of `meta` under
-- `server.*` keys.

-- The only admin so far was the first account, made with the setup token: the owner.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
UPDATE users SET role = 'owner' WHERE is_admin = 1;
ALTER TABLE users DROP COLUMN is_admin;

ALTER TABLE channels ADD COLUMN topic TEXT NOT NULL DEFAULT '';
-- 1: a text or voice channel visible only to the rows of channel_members (DMs always are).
ALTER TABLE channels ADD COLUMN private BIGINT NOT NULL DEFAULT 0;

-- A banned account is also removed (users.removed_at); the row here refuses login and
-- registration until it is deleted.
CREATE TABLE bans (
    user_id     BIGINT PRIMARY KEY,
    reason      TEXT,
    banned_by   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- user_id has blocked blocked_id.
CREATE TABLE blocks (
    user_id     BIGINT NOT NULL,
    blocked_id  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- changes: a JSON array of {field, old, new}.
CREATE TABLE audit_log (
    id                 BIGINT PRIMARY KEY,
    actor_id           BIGINT NOT NULL,
    action             TEXT NOT NULL,
    target_user_id     BIGINT,
    target_channel_id  BIGINT,
    target_invite      TEXT,
    changes            TEXT NOT NULL DEFAULT '[]',
    reason             TEXT,
    created_at         BIGINT NOT NULL
);
