#!/usr/bin/env bash
# The SQL blocks the docs show and the tests run must be exactly the files the tests run:
# documentation that drifts from what is tested fails here.
#   docs/security.md   <!-- grants:begin --> ... <!-- grants:end -->     = tests/rpc/grants.sql
#     (the RPC test and tests/pg_regress/sql/security_grants.sql run it)
#   docs/operations.md <!-- idle-job:begin --> ... <!-- idle-job:end -->  = tests/pg_regress/sql/include/idle_job.sql
#     (tests/pg_regress/sql/security_idle_job.sql runs it)
#   README.md          <!-- usage:begin --> ... <!-- usage:end -->        = tests/pg_regress/sql/include/readme_usage.sql
#     (tests/pg_regress/sql/readme.sql runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {
  local doc=$1 marker=$2 file=$3 block
  block=$(sed -n "/<!-- $marker:begin -->/,/<!-- $marker:end -->/p" "$doc" | sed '1d;$d' | sed '/^```/d')
  if [ -z "$block" ]; then
    echo "$doc has no $marker block"; status=1; return
  fi
  if ! diff -u "$file" <(printf '%s\n' "$block"); then
    echo "$doc $marker block differs from $file"; status=1; return
  fi
  echo "$doc $marker block = $file ($(wc -l < "$file") lines)"
}
check docs/security.md grants tests/rpc/grants.sql
check docs/operations.md idle-job tests/pg_regress/sql/include/idle_job.sql
check README.md usage tests/pg_regress/sql/include/readme_usage.sql
exit $status
