-- The Pass and Fail list filters walk one annotator's annotations of one verdict in reading
-- order. With only (user_id, dataset_id, sort_key) the deepest Fail page stepped over every
-- recent Pass (thousands after a session of Pass & Next); with the verdict in the key it is
-- a direct range scan whatever the mix. Kept in step across both backends.
CREATE INDEX annotations_user_verdict ON annotations (user_id, dataset_id, verdict, sort_key);
