#!/usr/bin/env bash
# Runs the pg_regress suite (tests/pg_regress) against a throw-away PostgreSQL cluster
# with the installed chat_assign. Expects the extension to be installed already
# (scripts/test.sh does that). --bless copies the results over the expected files.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cluster.sh
PGXS=$("$PG_CONFIG" --pgxs)
REGRESS=$(dirname "$PGXS")/../test/regress/pg_regress
DIR=/tmp/chat_assign_regress
OUT=target/pg_regress

cluster_start "$DIR" 54320
trap 'cluster_stop "$DIR"' EXIT
rm -rf "$OUT" && mkdir -p "$OUT"
if [ "${1:-}" = "--bless" ]; then
  mkdir -p tests/pg_regress/expected
  awk '/^test:/ {for (i = 2; i <= NF; i++) print $i}' tests/pg_regress/schedule |
    while read -r t; do touch "tests/pg_regress/expected/$t.out"; done
fi
status=0
"$REGRESS" --inputdir=tests/pg_regress --outputdir="$OUT" \
  --bindir="$PG_BIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
  --dbname=chat_assign_regress --schedule=tests/pg_regress/schedule || status=$?
if [ "${1:-}" = "--bless" ]; then
  mkdir -p tests/pg_regress/expected
  cp "$OUT"/results/*.out tests/pg_regress/expected/
  echo "blessed: $(find tests/pg_regress/expected -name '*.out' -printf '%f\n' | sort | tr '\n' ' ')"
elif [ "$status" -ne 0 ] && [ -f "$OUT/regression.diffs" ]; then
  cat "$OUT/regression.diffs"
fi
exit "$status"
