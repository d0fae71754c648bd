-- Full-text search over the trace list: the user message, the AI response and the metadata
-- values of every trace, in an FTS5 index whose rowid is the trace's id (external content:
-- the text stays in `traces`, the index holds only tokens). Triggers keep it in step with
-- the inserts of an import and the deletes of a failed one; traces are never updated.
-- `unicode61 remove_diacritics 2`: case and accents are ignored ("cafe" finds "Café").
CREATE VIRTUAL TABLE traces_fts USING fts5(
    user_message, ai_response, metadata,
    content = 'traces', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER traces_fts_insert AFTER INSERT ON traces BEGIN
    INSERT INTO traces_fts (rowid, user_message, ai_response, metadata)
    VALUES (new.id, new.user_message, new.ai_response, new.metadata);
END;

CREATE TRIGGER traces_fts_delete AFTER DELETE ON traces BEGIN
    INSERT INTO traces_fts (traces_fts, rowid, user_message, ai_response, metadata)
    VALUES ('delete', old.id, old.user_message, old.ai_response, old.metadata);
END;

INSERT INTO traces_fts (traces_fts) VALUES ('rebuild');
