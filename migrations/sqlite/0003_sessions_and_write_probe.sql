-- Sessions move into the application's own table, written through the same single writer
-- connection as every other write (no second connection competing for SQLite's write lock).
-- Sessions of the previous store are dropped: people sign in once more after this upgrade.
DROP TABLE IF EXISTS tower_sessions;

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
