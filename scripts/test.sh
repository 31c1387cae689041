#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (scripts/setup.sh) and runs every test of chat_assign on
# every supported PostgreSQL: 15 (Debian 12's package), 17 and 18 (built once from Debian's
# source packages by scripts/pg_build.sh, cached). For each: fmt (the whole workspace), clippy
# (the extension and the stress client), shellcheck, the #[pg_test] suite, the pg_regress
# suite, the isolation specs, the multi-connection stress test, the node-postgres RPC test,
# the operations suite (PostgreSQL's TAP framework: background worker, change events,
# dump/restore, upgrades, replication, a crash, a standby) and the docs SQL blocks. Each
# step passes or fails by its exit status; the summary lists them, and the script exits
# non-zero if any failed. Must run as root (apt-get; clusters run as
# postgres). With PG_CONFIG set, only that PostgreSQL is tested.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
LOGS=target/test-logs
started=$(date +%s)

# Every version, one after the other: this script again, with PG_CONFIG set.
if [ -z "${PG_CONFIG:-}" ]; then
  versions=(15 17 18)
  failed=0; lines=()
  bash scripts/setup.sh || { echo "setup failed"; exit 1; }
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
      lines+=("PostgreSQL $major  FAILED (no server: the build failed)"); failed=$((failed + 1)); continue
    fi
    rc=0
    PG_CONFIG=$config bash scripts/test.sh 2>&1 | tee "$LOGS/postgresql-$major.log" || rc=$?
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
    lines+=("$(printf 'PostgreSQL %-3s %s  (%ds)' "$major" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" \
      $(( $(date +%s) - t0 )))")
  done
  echo; echo "=================== all versions ($(( $(date +%s) - started ))s)"
  printf '%s\n' "${lines[@]}"
  [ "$failed" -eq 0 ] && echo "all passed" || echo "$failed of ${#versions[@]} versions FAILED"
  [ "$failed" -eq 0 ]
  exit
fi

bash scripts/setup.sh || { echo "setup failed"; exit 1; }
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
echo "== PostgreSQL $PG_MAJOR ($PG_CONFIG)"
mkdir -p "$LOGS"

failed=0; report=()
# step NAME COMMAND...: runs COMMAND with its output shown and logged in $LOGS; the step
# passes when COMMAND exits 0. Each suite prints its own counts (cargo test, pg_regress,
# prove, the stress and RPC clients); nothing here reads them back.
step() {
  local name=$1; shift
  local log="$LOGS/${name// /_}.log" t0 rc
  t0=$(date +%s)
  echo; echo "=================== $name"
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  report+=("$(printf '%-28s %s  (%ds)' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" \
    $(( $(date +%s) - t0 )))")
}

pgrx_test() {
  # initdb and postgres refuse root: the test cluster runs as postgres in a dir it owns.
  mkdir -p /tmp/chat_assign_pgrx && chown postgres:postgres /tmp/chat_assign_pgrx
  cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata /tmp/chat_assign_pgrx/data
}

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --no-default-features --features "pg$PG_MAJOR pg_test" -- -D warnings
step "cargo clippy (stress)" cargo clippy -p chat_assign_stress --all-targets -- -D warnings
step "shellcheck" shellcheck scripts/*.sh .ci/run
step "pg_test" pgrx_test
# cargo pgrx test installed its test build; everything after runs on the release build.
step "install release build" cargo pgrx install --release --pg-config "$PG_CONFIG"
step "pg_regress" bash scripts/regress.sh
step "isolation" bash scripts/isolation.sh
step "stress" bash scripts/stress.sh
step "rpc (node-postgres)" bash scripts/rpc.sh
step "operations (TAP)" bash scripts/tap.sh
# The SQL the docs show is the SQL the tests run (grants, scheduled idle job).
step "docs SQL blocks" bash scripts/check_readme_grants.sh

echo; echo "=================== summary ($(( $(date +%s) - started ))s)"
printf '%s\n' "${report[@]}"
[ "$failed" -eq 0 ] && echo "all ${#report[@]} steps passed" || echo "$failed of ${#report[@]} steps FAILED"
[ "$failed" -eq 0 ]
