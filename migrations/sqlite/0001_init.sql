-- Tracecoder schema (SQLite). Portable types only: TEXT, BIGINT (flags 0/1, unix seconds).
-- Kept in step with ../postgres/0001_init.sql: same tables, columns and indexes.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    email       TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    is_admin    BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    -- JSON array of the original column names, in file order, of the first import.
    columns     TEXT    NOT NULL DEFAULT '[]',
    -- Visible traces, updated when an import completes.
    trace_count BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL
);

-- One row per import attempt; traces of an import that is not 'done' are invisible.
CREATE TABLE imports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id      BIGINT  NOT NULL REFERENCES datasets (id),
    user_id         BIGINT  REFERENCES users (id),
    file_name       TEXT    NOT NULL,
    state           TEXT    NOT NULL,          -- running | done | failed
    rows_read       BIGINT  NOT NULL DEFAULT 0,
    rows_inserted   BIGINT  NOT NULL DEFAULT 0,
    rows_duplicate  BIGINT  NOT NULL DEFAULT 0,
    bytes_total     BIGINT  NOT NULL DEFAULT 0,
    bytes_read      BIGINT  NOT NULL DEFAULT 0,
    message         TEXT    NOT NULL DEFAULT '',
    errors          TEXT    NOT NULL DEFAULT '[]',   -- JSON array of row errors (first 100)
    error_count     BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    -- Refreshed by the running import; a stale one was interrupted and gets cleaned up.
    heartbeat_at    BIGINT  NOT NULL,
    finished_at     BIGINT
);
-- At most one running import per dataset: imports into one dataset never interleave.
CREATE UNIQUE INDEX imports_one_running ON imports (dataset_id) WHERE state = 'running';
CREATE INDEX imports_dataset_state ON imports (dataset_id, state);

-- Conversation position in its dataset, in order of first appearance across imports.
CREATE TABLE conversations (
    dataset_id    BIGINT  NOT NULL REFERENCES datasets (id),
    flow_session  TEXT    NOT NULL,
    position      BIGINT  NOT NULL,
    import_id     BIGINT  NOT NULL,
    PRIMARY KEY (dataset_id, flow_session)
);

CREATE TABLE traces (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id    BIGINT  NOT NULL REFERENCES datasets (id),
    import_id     BIGINT  NOT NULL,
    trace_id      TEXT    NOT NULL,
    -- conversation position << 20 | turn_number: the one keyset order of a dataset.
    sort_key      BIGINT  NOT NULL,
    flow_session  TEXT    NOT NULL,
    turn_number   BIGINT  NOT NULL,
    total_turns   BIGINT,                       -- NULL when the file had none: derived
    user_message  TEXT    NOT NULL,
    ai_response   TEXT    NOT NULL,
    tool_calls    TEXT    NOT NULL DEFAULT '[]', -- JSON array of tool calls
    metadata      TEXT    NOT NULL DEFAULT '[]', -- JSON array of [column, value], file order
    UNIQUE (dataset_id, trace_id),
    UNIQUE (dataset_id, sort_key)
);
CREATE INDEX traces_import ON traces (import_id);

CREATE TABLE annotations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_pk            BIGINT  NOT NULL REFERENCES traces (id),
    dataset_id          BIGINT  NOT NULL,
    user_id             BIGINT  NOT NULL REFERENCES users (id),
    sort_key            BIGINT  NOT NULL,
    verdict             TEXT    NOT NULL CHECK (verdict IN ('pass', 'fail')),
    first_failure_note  TEXT    NOT NULL DEFAULT '',
    open_codes          TEXT    NOT NULL DEFAULT '',
    comments            TEXT    NOT NULL DEFAULT '',
    version             BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    UNIQUE (trace_pk, user_id)
);
-- Progress (one aggregate) and the per-user export walk.
CREATE INDEX annotations_user_dataset ON annotations (user_id, dataset_id, sort_key);
CREATE INDEX annotations_dataset ON annotations (dataset_id, sort_key);

-- Every save, so nothing an annotator wrote is ever lost.
CREATE TABLE annotation_revisions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    annotation_id       BIGINT  NOT NULL REFERENCES annotations (id),
    version             BIGINT  NOT NULL,
    verdict             TEXT    NOT NULL,
    first_failure_note  TEXT    NOT NULL,
    open_codes          TEXT    NOT NULL,
    comments            TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    UNIQUE (annotation_id, version)
);

-- Open codes as rows, so they can be counted and grouped (axial coding later).
CREATE TABLE annotation_codes (
    annotation_id  BIGINT  NOT NULL REFERENCES annotations (id),
    dataset_id     BIGINT  NOT NULL,
    code           TEXT    NOT NULL,
    PRIMARY KEY (annotation_id, code)
);
CREATE INDEX annotation_codes_dataset ON annotation_codes (dataset_id, code);

-- Per annotator and dataset: every trace with sort_key <= low_water is annotated.
CREATE TABLE resume_points (
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    low_water   BIGINT  NOT NULL,
    PRIMARY KEY (user_id, dataset_id)
);

-- Per annotator and dataset: how many passes and fails, kept in the save transaction so
-- progress is one primary-key read at any size.
CREATE TABLE annotation_counts (
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    passes      BIGINT  NOT NULL DEFAULT 0,
    fails       BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, dataset_id)
);
