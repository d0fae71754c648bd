-- Team review: who codes which trace, blind coding, adjudicated reference labels.
-- Kept in step with ../postgres/0009_team_review.sql.

-- A dataset's assignment (at most one): the shared overlap and assignees per trace.
CREATE TABLE dataset_assignments (
    dataset_id  BIGINT  PRIMARY KEY REFERENCES datasets (id),
    shared      BIGINT  NOT NULL,
    per_trace   BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL
);

-- The people an assignment names, by email (they may not have signed in yet), in order.
CREATE TABLE assignees (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    email       TEXT    NOT NULL,          -- lowercase
    position    BIGINT  NOT NULL,
    -- Traces assigned (kept by the dealing), so a queue's size is one primary-key read.
    assigned    BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (dataset_id, email)
);

-- Which assignee codes which trace; a shared trace has a row per assignee. The primary key
-- is an assignee's queue in reading order (a keyset walk); `shared` marks the overlap.
CREATE TABLE trace_assignments (
    dataset_id  BIGINT  NOT NULL,
    assignee    BIGINT  NOT NULL REFERENCES assignees (id),
    sort_key    BIGINT  NOT NULL,
    trace_pk    BIGINT  NOT NULL REFERENCES traces (id),
    shared      BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset_id, assignee, sort_key)
);
CREATE INDEX trace_assignments_trace ON trace_assignments (trace_pk);

-- 1: admins stay blind too (the trace view never shows anyone else's annotation).
ALTER TABLE datasets ADD COLUMN blind_admins BIGINT NOT NULL DEFAULT 0;

-- A lead's decision on a trace the annotators disagree on. Every decision is kept; the
-- latest (highest id) of a trace is its reference label.
CREATE TABLE adjudications (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id     BIGINT  NOT NULL REFERENCES datasets (id),
    trace_pk       BIGINT  NOT NULL REFERENCES traces (id),
    user_id        BIGINT  NOT NULL REFERENCES users (id),
    verdict        TEXT    NOT NULL CHECK (verdict IN ('pass', 'fail')),
    failure_modes  TEXT    NOT NULL DEFAULT '[]',   -- JSON array of mode names, sorted
    reason         TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX adjudications_trace ON adjudications (trace_pk, id);
CREATE INDEX adjudications_dataset ON adjudications (dataset_id, trace_pk, id);
