-- Judge alignment: an LLM judge's verdicts on a dataset's traces, imported from CSV. Every
-- import of a judge name is a new version (run); the latest is the judge's current one.
-- Kept in step with ../postgres/0010_judges.sql.
CREATE TABLE judge_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id   BIGINT  NOT NULL REFERENCES datasets (id),
    judge        TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    file_name    TEXT    NOT NULL,
    imported_by  TEXT    NOT NULL,
    judged       BIGINT  NOT NULL,
    -- 1 when the file had a failure_modes column.
    has_modes    BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    UNIQUE (dataset_id, judge, version)
);

CREATE TABLE judge_verdicts (
    run_id         BIGINT  NOT NULL REFERENCES judge_runs (id),
    trace_pk       BIGINT  NOT NULL REFERENCES traces (id),
    verdict        TEXT    NOT NULL CHECK (verdict IN ('pass', 'fail')),
    failure_modes  TEXT    NOT NULL DEFAULT '[]',   -- JSON array of names, sorted
    PRIMARY KEY (run_id, trace_pk)
);
