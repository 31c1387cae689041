#!/usr/bin/env bash
# Helpers to run a throw-away PostgreSQL cluster (the one scripts/pg.sh names) as the postgres OS user
# (initdb and pg_ctl refuse to run as root). Source this file, then:
#   cluster_start DIR PORT [extra postgresql.conf lines...]
#   cluster_stop DIR
#   cluster_restart DIR     (same settings and data: preloaded workers start again)
# Connect with: psql -h "$PGHOST" -p PORT -U postgres
# shellcheck source=scripts/pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres -- "$@"; fi
}

cluster_start() {
  local dir=$1 port=$2; shift 2
  cluster_stop "$dir" 2>/dev/null || true
  rm -rf "$dir"
  mkdir -p "$dir"
  chown postgres:postgres "$dir" 2>/dev/null || true
  as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "max_connections = 200"
    echo "shared_buffers = 256MB"
    echo "fsync = off"
    echo "log_min_messages = warning"
    for line in "$@"; do echo "$line"; done
  } | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log"; return 1; }
  export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

cluster_stop() {
  local dir=$1
  [ -d "$dir/data" ] && as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

cluster_restart() {
  local dir=$1
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null \
    || { cat "$dir/server.log"; return 1; }
}
