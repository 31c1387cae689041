#!/usr/bin/env bash
# The operations tests: what needs clusters and processes (the background worker, change
# events, dump/restore, upgrades, logical and physical replication, a crash), written with
# PostgreSQL's own TAP framework (PostgreSQL::Test::Cluster) in tests/tap/t, against the
# installed extension (`cargo pgrx install --release` must have run). Run as root:
#
#   bash scripts/tap.sh                    # every test
#   bash scripts/tap.sh 004_upgrade.pl     # some of them
#
# initdb refuses root, so prove runs as the postgres OS user, from a copy of the files the
# tests read (the checkout may be where postgres cannot read) in $TAP_WORK (default
# /tmp/chat_assign_tap), whose tmp_check/log keeps every server log. Released install
# scripts missing from the server's extension directory are put there for the upgrade
# test, and removed again on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/pg.sh
source "$ROOT/scripts/pg.sh"
WORK=${TAP_WORK:-/tmp/chat_assign_tap}
PGXS_TEST=$(dirname "$("$PG_CONFIG" --pgxs)")/../test
EXT_DIR=$("$PG_CONFIG" --sharedir)/extension

# The change-events client (tests/stress/src/bin/events.rs) that 002_events.pl runs.
cargo build --profile stress --quiet --manifest-path "$ROOT/tests/stress/Cargo.toml" \
  --target-dir "$ROOT/tests/stress/target" --bin chat_assign_events

rm -rf "$WORK" && mkdir -p "$WORK/src/tests" "$WORK/bin" "$WORK/backup"
cp -R "$ROOT/tests/tap" "$WORK/src/tests/"
cp "$ROOT/tests/invariants.sql" "$WORK/src/tests/"
cp -R "$ROOT/sql" "$WORK/src/"
cp "$ROOT/Cargo.toml" "$WORK/src/"
cp "$ROOT/tests/stress/target/stress/chat_assign_events" "$WORK/bin/"
chown -R postgres:postgres "$WORK"

# Released install scripts of older versions (`cargo pgrx install` only installs the
# current one): put in place for the run, what was there before put back on exit.
copied=()
cleanup() {
  local target
  for target in "${copied[@]}"; do
    if [ -f "$WORK/backup/${target##*/}" ]; then cp -p "$WORK/backup/${target##*/}" "$target"; else rm -f "$target"; fi
  done
}
trap cleanup EXIT
for f in "$ROOT"/sql/released/chat_assign--*.sql; do
  target=$EXT_DIR/${f##*/}
  if [ -f "$target" ] && cmp -s "$f" "$target"; then continue; fi
  if [ -f "$target" ]; then cp -p "$target" "$WORK/backup/"; fi
  copied+=("$target")
  cp "$f" "$target"
done

tests=()
for t in "$@"; do tests+=("$WORK/src/tests/tap/t/$t"); done
[ "${#tests[@]}" -gt 0 ] || tests=("$WORK"/src/tests/tap/t/*.pl)
cd "$WORK"
sudo -u postgres -- env PATH="$PG_BIN:$PATH" PERL5LIB="$PGXS_TEST/perl:$WORK/src/tests/tap" \
  PG_REGRESS="$PGXS_TEST/regress/pg_regress" CHAT_ASSIGN_SRC="$WORK/src" \
  CHAT_ASSIGN_EVENTS_BIN="$WORK/bin/chat_assign_events" \
  TESTDIR="$WORK" TESTDATADIR="$WORK/tmp_check" TESTLOGDIR="$WORK/tmp_check/log" \
  prove -v --timer "${tests[@]}"
