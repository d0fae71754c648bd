-- The annotator's workspace: skips recorded per annotator, the decisions a session can undo,
-- and saves that were undone (kept, so the history still shows them).
-- Kept in step with ../postgres/0013_workspace.sql.

-- A trace an annotator skipped and has not annotated since (a save removes the row). The
-- primary key is their skipped traces in reading order: "next unannotated" probes it, the
-- "skipped" list filter walks it.
CREATE TABLE skips (
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    sort_key    BIGINT  NOT NULL,
    trace_pk    BIGINT  NOT NULL REFERENCES traces (id),
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, dataset_id, sort_key)
);

-- Every save and skip, in order: what `u` undoes (the latest not undone of this sign-in,
-- `session`: a random tag kept in the session) and where "Continue" resumes. `version` is the annotation version a save wrote (0 for a
-- skip), `base` the version it replaced (0: the save created the annotation); `undone_at`
-- is set when it was undone.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    dataset_id  BIGINT  NOT NULL REFERENCES datasets (id),
    trace_pk    BIGINT  NOT NULL REFERENCES traces (id),
    sort_key    BIGINT  NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('save', 'skip')),
    version     BIGINT  NOT NULL DEFAULT 0,
    base        BIGINT  NOT NULL DEFAULT 0,
    session     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    undone_at   BIGINT
);
CREATE INDEX decisions_user ON decisions (user_id, dataset_id, id);

-- A first save that was undone: the annotation is gone (the trace is to do again), its
-- revisions are kept here for the history.
CREATE TABLE undone_saves (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id          BIGINT  NOT NULL REFERENCES datasets (id),
    trace_pk            BIGINT  NOT NULL REFERENCES traces (id),
    user_id             BIGINT  NOT NULL REFERENCES users (id),
    version             BIGINT  NOT NULL,
    verdict             TEXT    NOT NULL,
    first_failure_note  TEXT    NOT NULL,
    open_codes          TEXT    NOT NULL,
    comments            TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    undone_at           BIGINT  NOT NULL
);
CREATE INDEX undone_saves_trace ON undone_saves (trace_pk, user_id);

-- An archived dataset leaves the dashboard (admins still find it under "Archived", and its
-- URLs keep working); NULL while it is in use.
ALTER TABLE datasets ADD COLUMN archived_at BIGINT;
