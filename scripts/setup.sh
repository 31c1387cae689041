#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh Debian 12 machine for chat_assign:
# Debian 12's PostgreSQL server (15) + headers, clang for bindgen, Node.js + npm for the RPC
# test, cargo-pgrx 0.18.1, and pgrx init for the PostgreSQL scripts/pg.sh names (PG_CONFIG).
# Must be run as root (it uses apt-get). Safe to re-run: each step checks first.
set -euo pipefail

PGRX_VERSION=0.18.1
export DEBIAN_FRONTEND=noninteractive

# libipc-run-perl: PostgreSQL's TAP framework (scripts/tap.sh), whose modules come with the dev package.
need_pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang pkg-config sudo shellcheck
           libipc-run-perl)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The server and the dev headers must be the same minor version, or the built
# library refuses to load ("incompatible library" / ABI mismatch).
srv=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
dev=$(dpkg-query -W -f='${Version}' postgresql-server-dev-15 2>/dev/null || true)
if [ "${#missing[@]}" -gt 0 ] || [ "$srv" != "$dev" ]; then
  echo "== apt: installing ${missing[*]:-} (server $srv, headers $dev)"
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Node.js and npm run the RPC test (tests/rpc, the `pg` client from the npm registry).
# A node that is already there (nodesource, nvm) is used as it is.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== apt: installing nodejs npm"
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.95 with rustup first" >&2
  exit 1
fi
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "== cargo install cargo-pgrx $PGRX_VERSION (takes a few minutes cold)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
# A pg_config pgrx was given that is gone (a removed build of scripts/pg_build.sh) would stop
# every pgrx build, of every version: forget it.
pgrx_config=${PGRX_HOME:-$HOME/.pgrx}/config.toml
if [ -f "$pgrx_config" ]; then
  grep -oE '^pg[0-9]+ = "[^"]+"' "$pgrx_config" | while IFS='"' read -r key path _; do
    if [ ! -x "$path" ]; then
      echo "== pgrx: forgetting ${key% = } ($path is gone)"
      sed -i "\|^${key}\"${path}\"\$|d" "$pgrx_config"
    fi
  done
fi
# shellcheck source=scripts/pg.sh
source "$(dirname "$0")/pg.sh"
if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "== cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
  cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
fi
echo "== setup done: $(cargo pgrx --version), $($PG_CONFIG --version)"
