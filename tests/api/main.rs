//! The integration tests: one binary (the app is linked once), a module per area. Each test
//! starts the real app on port 0 with a fresh database — a SQLite file, or a new Postgres
//! database with `TEST_BACKEND=postgres` — and drives it over HTTP, in a real browser, or
//! as the real binary.

mod helpers;

mod annotate;
mod browser;
mod codebook;
mod connections;
mod durability;
mod export;
mod import;
mod judges;
mod list;
mod oidc;
mod ops;
mod query_count;
mod review;
mod scale_out;
mod security;
mod sessions;
mod workspace;
