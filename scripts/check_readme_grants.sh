#!/usr/bin/env bash
# README's SQL blocks that the tests run must be exactly the files they run: documentation
# that drifts from what is tested fails here.
#   <!-- grants:begin --> ... <!-- grants:end -->     = tests/rpc/grants.sql (the RPC test and
#     tests/pg_regress/sql/security_grants.sql run it)
#   <!-- idle-job:begin --> ... <!-- idle-job:end -->  = tests/pg_regress/sql/include/idle_job.sql
#     (tests/pg_regress/sql/security_idle_job.sql runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {
  local marker=$1 file=$2 block
  block=$(sed -n "/<!-- $marker:begin -->/,/<!-- $marker:end -->/p" README.md | sed '1d;$d' | sed '/^```/d')
  if [ -z "$block" ]; then
    echo "README.md has no $marker block"; status=1; return
  fi
  if ! diff -u "$file" <(printf '%s\n' "$block"); then
    echo "README.md $marker block differs from $file"; status=1; return
  fi
  echo "README $marker block = $file ($(wc -l < "$file") lines)"
}
check grants tests/rpc/grants.sql
check idle-job tests/pg_regress/sql/include/idle_job.sql
exit $status
