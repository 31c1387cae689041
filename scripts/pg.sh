#!/usr/bin/env bash
# The PostgreSQL every script works with, from one setting: PG_CONFIG, the pg_config of the
# version under test (a Debian package's, or a build of one's own:
# `PG_CONFIG=/path/to/bin/pg_config bash scripts/test.sh`). By default, the newest server
# installed from Debian's packages. Source it; it sets PG_CONFIG, PG_BIN (the server's
# programs) and PG_MAJOR (15, 17, 18: the pgrx feature is pg$PG_MAJOR).
if [ -z "${PG_CONFIG:-}" ]; then
  PG_CONFIG=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/pg_config' 2>/dev/null |
    sort -V | tail -n 1)
fi
if [ -z "$PG_CONFIG" ] || [ ! -x "$PG_CONFIG" ]; then
  echo "no PostgreSQL found: set PG_CONFIG, or run scripts/setup.sh" >&2
  return 1 2>/dev/null || exit 1
fi
export PG_CONFIG
PG_BIN=$("$PG_CONFIG" --bindir)
PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
export PG_BIN PG_MAJOR
