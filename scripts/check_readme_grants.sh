#!/usr/bin/env bash
# README's "Roles and grants" block (between <!-- grants:begin --> and <!-- grants:end -->,
# inside a ```sql fence) must be exactly tests/rpc/grants.sql, the grants the RPC test and
# tests/pg_regress/sql/security_grants.sql run: documentation that drifts from what is
# tested fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
block=$(sed -n '/<!-- grants:begin -->/,/<!-- grants:end -->/p' README.md | sed '1d;$d' | sed '/^```/d')
if [ -z "$block" ]; then
  echo "README.md has no grants block"; exit 1
fi
if ! diff -u tests/rpc/grants.sql <(printf '%s\n' "$block"); then
  echo "README.md grants block differs from tests/rpc/grants.sql"; exit 1
fi
echo "README grants block = tests/rpc/grants.sql ($(wc -l < tests/rpc/grants.sql) lines)"
