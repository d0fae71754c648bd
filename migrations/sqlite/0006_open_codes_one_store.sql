-- Open codes have one store: the rows of annotation_codes, with the text as typed, its
-- position in the annotation (typed order) and its normalized form (trimmed, inner
-- whitespace collapsed, lowercase), indexed for counting per dataset. The joined string on
-- annotations goes; revisions keep theirs (the history of what was typed).
ALTER TABLE annotation_codes ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
-- Filled at start-up by the application (db::codes::backfill_normalized): LOWER() here
-- would only fold ASCII letters.
ALTER TABLE annotation_codes ADD COLUMN normalized TEXT NOT NULL DEFAULT '';
-- Typed order, recovered from where each code sits in the annotation's joined string.
UPDATE annotation_codes SET position = COALESCE((
    SELECT instr(', ' || a.open_codes || ', ', ', ' || annotation_codes.code || ', ')
    FROM annotations a WHERE a.id = annotation_codes.annotation_id), 0);
DROP INDEX annotation_codes_dataset;
CREATE INDEX annotation_codes_normalized ON annotation_codes (dataset_id, normalized, annotation_id);
ALTER TABLE annotations DROP COLUMN open_codes;
-- Keeps the start-up backfill's "anything left?" check one index probe.
CREATE INDEX annotation_codes_unnormalized ON annotation_codes (annotation_id) WHERE normalized = '';
