-- Attachments. A blob is a file stored once by its content: DATA_DIR/attachments/<hash> (SHA-256,
-- hex) and, for images that decoded, its preview <hash>.thumb. An attachment row is one upload
-- of a blob by a member, bound to a message when the message is sent (message_id stays NULL
-- until then). A blob is kept while any attachment row names it: the rows are its reference
-- count. An upload row is a resumable upload in progress (DATA_DIR/uploads/<id>.part).
CREATE TABLE blobs (
    hash          TEXT PRIMARY KEY,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    thumbnail     BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE attachments (
    id           BIGINT PRIMARY KEY,
    blob         TEXT NOT NULL REFERENCES blobs (hash),
    uploader_id  BIGINT NOT NULL,
    name         TEXT NOT NULL,
    message_id   BIGINT,
    channel_id   BIGINT,
    position     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);
CREATE INDEX attachments_blob ON attachments (blob);
CREATE INDEX attachments_uploader ON attachments (uploader_id);

CREATE TABLE uploads (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX uploads_user ON uploads (user_id);
