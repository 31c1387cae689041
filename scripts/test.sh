#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (scripts/setup.sh) and runs every test of chat_assign on
# every supported PostgreSQL: 15 (Debian 12's package), 17 and 18 (built once from Debian's
# source packages by scripts/pg_build.sh, cached). For each: fmt (the whole workspace), clippy
# (the extension and the stress client), shellcheck, the #[pg_test] suite, the pg_regress
# suite, the isolation specs, the multi-connection stress test, the node-postgres RPC test,
# the operations suite (background worker, change events, dump/restore, upgrades,
# replication, retries) and the docs SQL blocks. Prints one "N passed, N failed" line at the
# end and exits non-zero if anything failed. Must run as root (apt-get; clusters run as
# postgres). With PG_CONFIG set, only that PostgreSQL is tested.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
LOGS=target/test-logs
started=$(date +%s)

# Every version, one after the other: this script again, with PG_CONFIG set.
if [ -z "${PG_CONFIG:-}" ]; then
  versions=(15 17 18)
  total_passed=0; total_failed=0; lines=()
  bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
  mkdir -p "$LOGS"
  for major in "${versions[@]}"; do
    t0=$(date +%s)
    if [ "$major" = 15 ]; then
      # shellcheck source=scripts/pg.sh
      config=$(source scripts/pg.sh && echo "$PG_CONFIG")
    else
      echo; echo "=================== PostgreSQL $major: build (cached after the first run)"
      config=$(bash scripts/pg_build.sh "$major") || config=
    fi
    if [ -z "$config" ]; then
      lines+=("PostgreSQL $major: no server (build failed)"); total_failed=$((total_failed + 1)); continue
    fi
    PG_CONFIG=$config bash scripts/test.sh 2>&1 | tee "$LOGS/postgresql-$major.log"
    result=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGS/postgresql-$major.log" | tail -n 1)
    read -r p _ f _ <<<"${result:-0 passed, 1 failed}"
    total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
    lines+=("$(printf 'PostgreSQL %-3s %s  (%ds)' "$major" "${result:-no result}" $(( $(date +%s) - t0 )))")
  done
  echo; echo "=================== all versions ($(( $(date +%s) - started ))s)"
  printf '%s\n' "${lines[@]}"
  echo "$total_passed passed, $total_failed failed"
  [ "$total_failed" -eq 0 ]
  exit
fi

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
echo "== PostgreSQL $PG_MAJOR ($PG_CONFIG)"
mkdir -p "$LOGS"

passed=0; failed=0; report=()
# step NAME COUNT_PARSER COMMAND...: runs COMMAND with its output shown and logged; the
# parser turns the log into "passed failed" counts (a step that fails without counts is 1 failure).
step() {
  local name=$1 parser=$2; shift 2
  local log="$LOGS/${name// /_}.log" t0 rc p f
  t0=$(date +%s)
  echo; echo "=================== $name"
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  read -r p f < <($parser "$log" "$rc")
  passed=$((passed + p)); failed=$((failed + f))
  report+=("$(printf '%-28s %s  (%d passed, %d failed, %ds)' "$name" \
    "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" "$p" "$f" $(( $(date +%s) - t0 )))")
}
# One check: the command itself.
single() { if [ "$2" -eq 0 ]; then echo "1 0"; else echo "0 1"; fi; }
# cargo test: "test result: ok. 24 passed; 0 failed; ..." once per test binary: summed.
cargo_counts() {
  local sums
  sums=$(grep -E 'test result: .* passed; .* failed' "$1" \
    | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' \
    | awk '{p += $1; f += $2} END {if (NR) print p, f}')
  if [ -z "$sums" ]; then single "$1" "$2"; return; fi
  local p f; read -r p f <<<"$sums"
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  echo "$p $f"
}
# pg_regress / pg_isolation_regress: "All 5 tests passed." or "2 of 5 tests failed."
regress_counts() {
  if grep -qE 'All [0-9]+ tests passed' "$1"; then
    echo "$(grep -oE 'All [0-9]+ tests passed' "$1" | grep -oE '[0-9]+') 0"
  elif grep -qE '[0-9]+ of [0-9]+ tests failed' "$1"; then
    grep -oE '[0-9]+ of [0-9]+ tests failed' "$1" | awk '{print $3 - $1, $1}'
  else single "$1" "$2"; fi
}
# suites ending with their own "<name>: N passed, M failed" line (stress, rpc, ops)
suite_counts() {
  local line; line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
  if [ -z "$line" ]; then single "$1" "$2"; return; fi
  local p f; p=$(awk '{print $2}' <<<"$line"); f=$(awk '{print $4}' <<<"$line")
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  echo "$p $f"
}

pgrx_test() {
  # initdb and postgres refuse root: the test cluster runs as postgres in a dir it owns.
  mkdir -p /tmp/chat_assign_pgrx && chown postgres:postgres /tmp/chat_assign_pgrx
  cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata /tmp/chat_assign_pgrx/data
}

step "cargo fmt" single cargo fmt --all -- --check
step "cargo clippy" single cargo clippy --no-default-features --features "pg$PG_MAJOR pg_test" -- -D warnings
step "cargo clippy (stress)" single cargo clippy -p chat_assign_stress --all-targets -- -D warnings
step "shellcheck" single shellcheck scripts/*.sh .ci/run
step "pg_test" cargo_counts pgrx_test
# cargo pgrx test installed its test build; everything after runs on the release build.
step "install release build" single cargo pgrx install --release --pg-config "$PG_CONFIG"
step "pg_regress" regress_counts bash scripts/regress.sh
step "isolation" regress_counts bash scripts/isolation.sh
step "stress" suite_counts bash scripts/stress.sh
step "rpc (node-postgres)" suite_counts bash scripts/rpc.sh
step "ops" suite_counts bash scripts/ops.sh
# The SQL the docs show is the SQL the tests run (grants, scheduled idle job).
step "docs SQL blocks" single bash scripts/check_readme_grants.sh

echo; echo "=================== summary ($(( $(date +%s) - started ))s)"
printf '%s\n' "${report[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
