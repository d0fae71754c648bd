-- Sessions move into the application's own table, on the application's own connection pool
-- (kept in step with the SQLite schema, where that pool is the single writer connection).
-- Sessions of the previous store are dropped: people sign in once more after this upgrade.
DROP SCHEMA IF EXISTS tower_sessions CASCADE;

CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,
    data        TEXT    NOT NULL,           -- JSON object of the session's values
    expires_at  BIGINT  NOT NULL            -- unix seconds
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One row that `/readyz` rewrites while database writes are failing, to see them work again.
CREATE TABLE write_probe (
    id          BIGINT  PRIMARY KEY,
    probed_at   BIGINT  NOT NULL
);
INSERT INTO write_probe (id, probed_at) VALUES (1, 0);
