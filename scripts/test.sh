#!/usr/bin/env bash
# Runs the whole test suite: unit and HTTP tests on SQLite, then the same integration tests
# on Postgres (a fresh database per test on TEST_POSTGRES_URL's server). Tests that need
# Postgres, Redis, nginx, Node or Chromium skip loudly when those are missing, except under
# CI=true, where a missing piece fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

# Each Postgres-backed test creates its own database; drop the ones earlier runs left.
if pg_isready -q -d "$TEST_POSTGRES_URL" 2>/dev/null; then
  psql -qAt -d "$TEST_POSTGRES_URL" -c "SELECT datname FROM pg_database WHERE datname LIKE 'tc\_test\_%'" |
    while read -r db; do psql -q -d "$TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true; done
fi

echo "== tests on SQLite =="
cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}"

if pg_isready -q -d "$TEST_POSTGRES_URL" 2>/dev/null; then
  echo "== the same integration tests on Postgres =="
  TEST_BACKEND=postgres cargo test --tests -- --test-threads="${TEST_THREADS:-4}"
elif [ "${CI:-}" = "true" ]; then
  echo "Postgres at $TEST_POSTGRES_URL is required under CI=true" >&2
  exit 1
else
  echo "*** SKIPPED: the Postgres run (no server at $TEST_POSTGRES_URL) ***" >&2
fi
