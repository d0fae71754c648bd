-- The codebook: open codes grouped into failure modes (axial coding). A code belongs to at
-- most one mode of its dataset; grouping is a mapping and never rewrites an annotation.
-- Kept in step with ../postgres/0012_codebook.sql.

-- Code rows carry what counting needs, so the codebook's counts read one index and never
-- the annotations: the trace, the annotator, the trace's reading position and whether the
-- annotation is a Fail. A save rewrites its annotation's code rows, so they stay current.
ALTER TABLE annotation_codes ADD COLUMN trace_pk BIGINT NOT NULL DEFAULT 0;
ALTER TABLE annotation_codes ADD COLUMN user_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE annotation_codes ADD COLUMN sort_key BIGINT NOT NULL DEFAULT 0;
ALTER TABLE annotation_codes ADD COLUMN fail BIGINT NOT NULL DEFAULT 0;
UPDATE annotation_codes SET
    trace_pk = (SELECT a.trace_pk FROM annotations a WHERE a.id = annotation_codes.annotation_id),
    user_id = (SELECT a.user_id FROM annotations a WHERE a.id = annotation_codes.annotation_id),
    sort_key = (SELECT a.sort_key FROM annotations a WHERE a.id = annotation_codes.annotation_id),
    fail = (SELECT CASE WHEN a.verdict = 'fail' THEN 1 ELSE 0 END FROM annotations a
            WHERE a.id = annotation_codes.annotation_id);
DROP INDEX annotation_codes_normalized;
-- Covering: counts per code, the trace list filtered by a code (in reading order) and the
-- saturation walk read only this index.
CREATE INDEX annotation_codes_counting
    ON annotation_codes (dataset_id, normalized, sort_key, trace_pk, user_id, fail);

CREATE TABLE failure_modes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id   BIGINT  NOT NULL REFERENCES datasets (id),
    name         TEXT    NOT NULL,
    -- The name as compared: normalized like a code. Unique with the aliases of the dataset.
    name_key     TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    -- Set when archived: the mode leaves counts, export and suggestions; its codes wait in
    -- it for a restore.
    archived_at  BIGINT,
    created_at   BIGINT  NOT NULL,
    UNIQUE (dataset_id, name_key)
);

-- Names a mode had before a rename or a merge: still found by them (judge files,
-- adjudications, codebook imports written with the old name).
CREATE TABLE failure_mode_aliases (
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    name_key    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    mode_id     BIGINT  NOT NULL REFERENCES failure_modes (id),
    PRIMARY KEY (dataset_id, name_key)
);

-- The grouping: a normalized open code in one mode.
CREATE TABLE failure_mode_codes (
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    code        TEXT    NOT NULL,
    mode_id     BIGINT  NOT NULL REFERENCES failure_modes (id),
    PRIMARY KEY (dataset_id, code)
);
CREATE INDEX failure_mode_codes_mode ON failure_mode_codes (mode_id, code);

-- Every change to the codebook: who, when, what.
CREATE TABLE codebook_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX codebook_changes_dataset ON codebook_changes (dataset_id, id);

-- Suggested groupings a lead dismissed, by their codes (sorted, joined): not offered again.
CREATE TABLE dismissed_suggestions (
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    codes       TEXT    NOT NULL,
    PRIMARY KEY (dataset_id, codes)
);

-- The codebook's shares: distinct annotated and Fail traces per dataset and annotator.
CREATE INDEX annotations_dataset_verdict ON annotations (dataset_id, verdict, sort_key, user_id);
