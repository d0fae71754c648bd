-- A save that took its trace out of the annotator's skipped ones says so, so that undoing
-- the save puts the trace back among them (1) instead of leaving it "to do" (0).
ALTER TABLE decisions ADD COLUMN cleared_skip BIGINT NOT NULL DEFAULT 0;
