-- The pass/fail counters per annotator and dataset are kept by the trigger that already
-- counts changes (0016), in the statement that writes the annotation: a save no longer runs
-- a statement of its own for them, and an undo that removes a first save no longer runs one
-- to take it back out. Kept in step with ../sqlite/0017_counts_in_triggers.sql.
CREATE OR REPLACE FUNCTION annotations_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed annotations%ROWTYPE;
    pass_delta BIGINT := 0;
    fail_delta BIGINT := 0;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
        pass_delta := (NEW.verdict = 'pass')::int;
        fail_delta := (NEW.verdict = 'fail')::int;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        pass_delta := pass_delta - (OLD.verdict = 'pass')::int;
        fail_delta := fail_delta - (OLD.verdict = 'fail')::int;
    END IF;
    INSERT INTO annotation_counts AS c (user_id, dataset_id, passes, fails, changes)
    VALUES (changed.user_id, changed.dataset_id, pass_delta, fail_delta, 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET
        passes = c.passes + excluded.passes,
        fails = c.fails + excluded.fails,
        changes = c.changes + 1;
    RETURN NULL;
END;
$$;
