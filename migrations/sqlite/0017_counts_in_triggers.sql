-- The pass/fail counters per annotator and dataset are kept by the triggers that already
-- count changes (0016), in the statement that writes the annotation: a save no longer runs
-- a statement of its own for them, and an undo that removes a first save no longer runs one
-- to take it back out. Kept in step with ../postgres/0017_counts_in_triggers.sql.
DROP TRIGGER annotations_count_insert;
DROP TRIGGER annotations_count_update;
DROP TRIGGER annotations_count_delete;

CREATE TRIGGER annotations_count_insert AFTER INSERT ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, passes, fails, changes)
    VALUES (NEW.user_id, NEW.dataset_id, NEW.verdict = 'pass', NEW.verdict = 'fail', 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET
        passes = annotation_counts.passes + excluded.passes,
        fails = annotation_counts.fails + excluded.fails,
        changes = annotation_counts.changes + 1;
END;

CREATE TRIGGER annotations_count_update AFTER UPDATE ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, passes, fails, changes)
    VALUES (NEW.user_id, NEW.dataset_id,
            (NEW.verdict = 'pass') - (OLD.verdict = 'pass'),
            (NEW.verdict = 'fail') - (OLD.verdict = 'fail'), 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET
        passes = annotation_counts.passes + excluded.passes,
        fails = annotation_counts.fails + excluded.fails,
        changes = annotation_counts.changes + 1;
END;

CREATE TRIGGER annotations_count_delete AFTER DELETE ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, passes, fails, changes)
    VALUES (OLD.user_id, OLD.dataset_id, -(OLD.verdict = 'pass'), -(OLD.verdict = 'fail'), 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET
        passes = annotation_counts.passes + excluded.passes,
        fails = annotation_counts.fails + excluded.fails,
        changes = annotation_counts.changes + 1;
END;
