#!/usr/bin/env bash
# Makes sure the PostgreSQL the test suite uses answers on 127.0.0.1:5432 and has a database `test`: starts the
# machine's Debian cluster only when nothing answers, then waits for it. The suite itself never starts services;
# in CI (CI=true) a PostgreSQL that still does not answer fails the tests that need it, with a sentence.
# A server elsewhere: set OPENSCAN_TEST_PG (a SQLAlchemy URL) and this script leaves it alone.
set -euo pipefail

if [ -n "${OPENSCAN_TEST_PG:-}" ]; then
  exit 0
fi
HOST=127.0.0.1
PORT=5432

if ! pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "PostgreSQL is not installed (no cluster under /etc/postgresql): install the Debian package" \
         "'postgresql' (scripts/system-deps.sh does) or set OPENSCAN_TEST_PG; its tests will be skipped" \
         "(or fail in CI)." >&2
    exit 0
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  for version in $(ls /etc/postgresql); do
    echo "starting PostgreSQL $version (cluster main)"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 60); do
    pg_isready -q -h "$HOST" -p "$PORT" && break
    sleep 0.5
  done
fi

if ! pg_isready -q -h "$HOST" -p "$PORT"; then
  echo "PostgreSQL still does not answer on $HOST:$PORT; its tests will be skipped (or fail in CI)." >&2
  exit 0
fi
if ! psql -h "$HOST" -p "$PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
     2>/dev/null | grep -q 1; then
  createdb -h "$HOST" -p "$PORT" -U postgres test 2>/dev/null \
    || echo "Could not create the database 'test' as user postgres on $HOST:$PORT (the suite expects" \
            "trust authentication for 127.0.0.1); create it or set OPENSCAN_TEST_PG." >&2
fi
