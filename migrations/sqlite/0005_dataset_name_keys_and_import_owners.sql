-- Dataset names and import ownership. Kept in step across both backends.

-- What makes two names the same dataset (trimmed, inner whitespace collapsed, lowercase;
-- computed by the app, `domain::dataset_name::key_of`). Datasets created before this
-- migration get theirs from the app the first time datasets are looked up by name. Two
-- different keys may want the same slug: the second gets a numeric suffix ("foo-2").
ALTER TABLE datasets ADD COLUMN name_key TEXT;
CREATE UNIQUE INDEX datasets_name_key ON datasets (name_key);

-- The runner of an import: a random token per run. Only the owner may add rows, heartbeat,
-- or finish the import; a reaper takes ownership of an import whose heartbeat stopped before
-- it removes its rows, so a runner that was only slow can never finish half an import.
ALTER TABLE imports ADD COLUMN owner TEXT NOT NULL DEFAULT '';
