-- Full-text search over messages. The text indexed is not the message itself but our own
-- tokens (src/search/text.rs: folded words, CJK bigrams and unigrams, channel and author
-- tags), separated by spaces; the tokenizer only splits them again (private-use characters,
-- which start the tags, and marks count as token characters). Contentless: the text is in
-- messages.content; rows can still be deleted (edits, deletes, retention). rowid = messages.id.
CREATE VIRTUAL TABLE message_search USING fts5(
    body,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
);
