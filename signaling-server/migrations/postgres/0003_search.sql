-- Full-text search over messages: one row per live message, its tokens (src/search/text.rs:
-- folded words, CJK bigrams and unigrams, channel and author tags) as a tsvector written by
-- us (no text search configuration is involved, so both databases index the same tokens),
-- with a GIN index. channel_id and author_id are here too, so that filtering the matches by
-- readable channel and blocked author needs no join.
CREATE TABLE message_search (
    id          BIGINT PRIMARY KEY,
    channel_id  BIGINT NOT NULL,
    author_id   BIGINT NOT NULL,
    tsv         TSVECTOR NOT NULL
);
CREATE INDEX message_search_tsv ON message_search USING GIN (tsv);
