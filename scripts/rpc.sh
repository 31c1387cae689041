#!/usr/bin/env bash
# RPC tests (tests/rpc): every function called the way PostgREST / Supabase calls it, as
# the login role `authenticator` switching per request to the role the JWT names, with
# the documented grants (docs/security.md) and the operator claim on. Starts its own PostgreSQL cluster with the
# installed chat_assign; needs node and npm (the `pg` client comes from the npm registry).
# Exit status 0 only when every test passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source scripts/cluster.sh
DIR=/tmp/ca_sec_rpc
PORT=54385
DB=chat_assign_rpc
OUT=target/rpc
mkdir -p "$OUT"

fail() { echo "rpc: $1" >&2; exit 1; }

(cd tests/rpc && npm ci --no-audit --no-fund --loglevel=error) >"$OUT/npm.log" 2>&1 \
  || { cat "$OUT/npm.log"; fail "npm ci failed"; }

cluster_start "$DIR" "$PORT" || fail "cluster did not start"
trap 'cluster_stop "$DIR"' EXIT

# The documented grants (tests/rpc/grants.sql = docs/security.md's block), then PostgREST's roles: anon for requests without
# a JWT, and authenticator, which may only switch to the roles it was granted.
psql -X -q -v ON_ERROR_STOP=1 -d postgres >"$OUT/setup.log" 2>&1 <<SQL || { cat "$OUT/setup.log"; fail "setup failed"; }
CREATE DATABASE $DB;
\c $DB
CREATE EXTENSION chat_assign;
\i tests/rpc/grants.sql
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT chat_app, chat_operator, chat_admin, anon TO authenticator;
ALTER ROLE authenticator SET chat_assign.operator_id_claim = 'sub';
SQL

# An app of bench/plpgsql's shape moved onto the extension (docs/adopting.md): its tables and
# functions in public, with the grants its roles had there; the extension beside it in
# schema chat_assign, with the documented grants; import, switch. tests/rpc/adopt.test.mjs calls
# the app's own names in public through the same PostgREST imitation.
psql -X -q -v ON_ERROR_STOP=1 -d postgres >>"$OUT/setup.log" 2>&1 <<SQL || { cat "$OUT/setup.log"; fail "setup of the adopted app failed"; }
CREATE DATABASE ${DB}_app;
\c ${DB}_app
\i tests/pg_regress/sql/include/legacy_app.sql
GRANT EXECUTE ON FUNCTION public.assign_chat_to_operator(uuid) TO chat_operator;
GRANT EXECUTE ON FUNCTION public.release_and_reassign_chat(uuid, text), public.get_assignment_queue_status(),
                          public.detect_stuck_chats(integer) TO chat_admin;
GRANT SELECT ON public.chats TO chat_operator, chat_admin;
GRANT SELECT ON public.chat_state_summary TO chat_admin;
CREATE SCHEMA chat_assign;
CREATE EXTENSION chat_assign SCHEMA chat_assign;
SELECT count(*) FROM chat_assign.import_app_tables('public', p_repair => true);
SET search_path = chat_assign;
$(grep -v '^CREATE ROLE' tests/rpc/grants.sql)
RESET search_path;
GRANT USAGE ON SCHEMA chat_assign TO chat_app, chat_operator, chat_admin;
SELECT count(*) FROM chat_assign.switch_app_calls('public');
SQL

# node's TAP reporter ends with its own counts ("# pass N", "# fail M"); its exit status is
# non-zero when a test failed.
PGDATABASE=$DB PGDATABASE_APP=${DB}_app node --test --test-reporter=tap tests/rpc/ 2>&1 | tee "$OUT/node.log"
exit "${PIPESTATUS[0]}"
