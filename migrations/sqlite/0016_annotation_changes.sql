-- A change counter per annotator and dataset, bumped by every write to their annotations
-- (a save, a revision, an undo), in the statement that writes: the codebook keeps its counts
-- between views and recomputes them only when the dataset's counters have moved. Kept in
-- step with ../postgres/0016_annotation_changes.sql.
--
-- It lives in the annotator's own counters row, which a save already updates: no row is
-- shared by annotators, so saves in one dataset never wait on each other for it.
ALTER TABLE annotation_counts ADD COLUMN changes BIGINT NOT NULL DEFAULT 0;
-- The dataset's counters summed (a handful of rows, one per annotator).
CREATE INDEX annotation_counts_dataset ON annotation_counts (dataset_id);

CREATE TRIGGER annotations_count_insert AFTER INSERT ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, changes)
    VALUES (NEW.user_id, NEW.dataset_id, 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET changes = annotation_counts.changes + 1;
END;

CREATE TRIGGER annotations_count_update AFTER UPDATE ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, changes)
    VALUES (NEW.user_id, NEW.dataset_id, 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET changes = annotation_counts.changes + 1;
END;

CREATE TRIGGER annotations_count_delete AFTER DELETE ON annotations BEGIN
    INSERT INTO annotation_counts (user_id, dataset_id, changes)
    VALUES (OLD.user_id, OLD.dataset_id, 1)
    ON CONFLICT (user_id, dataset_id) DO UPDATE SET changes = annotation_counts.changes + 1;
END;
