#!/usr/bin/env bash
# Isolation tests: the concurrency promises of chat_assign, run with PostgreSQL's own
# isolation tester against the extension installed in the PostgreSQL scripts/pg.sh names.
#
#   bash scripts/isolation.sh              # every test in tests/isolation/schedule
#   bash scripts/isolation.sh NAME...      # only tests/isolation/specs/NAME.spec
#
# By default it starts a throw-away cluster (ISO_DIR, ISO_PORT; see scripts/cluster.sh)
# and stops it at the end. With ISO_USE_RUNNING=1 it uses the server that PGHOST and
# PGPORT point at instead (it must have chat_assign installed and trust user postgres).
# Results go to target/isolation; on failure regression.diffs is printed and the exit
# status is non-zero. Run from anywhere, as root or as postgres.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# shellcheck source=scripts/pg.sh
source "$repo/scripts/pg.sh"
ISO_DIR=${ISO_DIR:-/tmp/ca_iso}
ISO_PORT=${ISO_PORT:-54340}
ISO_DB=${ISO_DB:-chat_assign_isolation}
# A step that waits longer than this (seconds) is cancelled and the test fails,
# instead of the run hanging on an unexpected lock wait.
export PGISOLATIONTIMEOUT=${PGISOLATIONTIMEOUT:-120}

bindir=$("$PG_CONFIG" --bindir)
regress=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/isolation/pg_isolation_regress
if [ ! -x "$regress" ]; then
  echo "isolation: $regress not found (install postgresql-server-dev-15)" >&2
  exit 2
fi
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/chat_assign.control" ]; then
  echo "isolation: chat_assign is not installed into $("$PG_CONFIG" --sharedir)/extension" >&2
  exit 2
fi

started=0
if [ "${ISO_USE_RUNNING:-0}" = 1 ]; then
  : "${PGHOST:?ISO_USE_RUNNING=1 needs PGHOST}" "${PGPORT:?ISO_USE_RUNNING=1 needs PGPORT}"
else
  # shellcheck source=cluster.sh
  source "$repo/scripts/cluster.sh"
  cluster_start "$ISO_DIR" "$ISO_PORT"
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then cluster_stop "$ISO_DIR"; fi; }
trap cleanup EXIT

out=$repo/target/isolation
rm -rf "$out"
mkdir -p "$out"
# pg_isolation_regress writes its results as the invoking user; make them readable
# (and writable) for a postgres-user run of the same tree too.
if [ "$(id -u)" = 0 ]; then chown postgres: "$out" 2>/dev/null || true; fi

# --use-existing makes pg_isolation_regress neither drop nor create its database.
"$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres \
  -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$ISO_DB\"" -c "CREATE DATABASE \"$ISO_DB\""
# The specs' shared fixture, with the invariants every test layer checks (tests/invariants.sql,
# its final semicolon dropped: it becomes a subquery).
"$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d "$ISO_DB" \
  -v invariants="$(sed -e 's/;[[:space:]]*$//' "$repo/tests/invariants.sql")" \
  -f "$repo/tests/isolation/fixture.sql"

if [ "$#" -gt 0 ]; then
  tests=("$@")
else
  tests=(--schedule="$repo/tests/isolation/schedule")
fi

set +e
"$regress" \
  --use-existing \
  --bindir="$bindir" \
  --host="$PGHOST" --port="$PGPORT" --user=postgres \
  --inputdir="$repo/tests/isolation" \
  --outputdir="$out" \
  --dbname="$ISO_DB" \
  "${tests[@]}"
rc=$?
set -e

if [ "$rc" -ne 0 ]; then
  if [ -s "$out/regression.diffs" ]; then
    echo "==== $out/regression.diffs ===="
    cat "$out/regression.diffs"
  fi
  echo "isolation: FAILED (pg_isolation_regress exit $rc)" >&2
  exit "$rc"
fi
echo "isolation: all tests passed"
