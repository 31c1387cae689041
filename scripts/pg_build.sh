#!/usr/bin/env bash
# Builds PostgreSQL MAJOR (17 or 18) once, from Debian's source package, into a cache
# directory, and prints its pg_config (everything else goes to stderr):
#
#   PG_CONFIG=$(bash scripts/pg_build.sh 17) bash scripts/test.sh
#
# Debian 12 packages only PostgreSQL 15. The newer versions' source packages come from
# Debian's trixie (17) and sid (18) suites, fetched with a private apt configuration (a
# sources file and a lists directory of its own under the cache): the machine's apt sources
# are not touched. apt checks the tarball against the signed index. When the mirror's pool
# lags behind its index (the indexed version's files answer 404), the previous point
# releases of the same Debian revision are tried, each tarball checked against its .dsc.
# CHAT_ASSIGN_PG_CACHE (default /var/cache/chat_assign) keeps the builds between runs.
set -euo pipefail
major=${1:?usage: pg_build.sh MAJOR}
case $major in 17) suite=trixie ;; 18) suite=sid ;; *) echo "PostgreSQL $major: not built here (15 is Debian 12's package)" >&2; exit 2 ;; esac
cache=${CHAT_ASSIGN_PG_CACHE:-/var/cache/chat_assign}
prefix=$cache/pg$major
log() { echo "== pg_build $major: $*" >&2; }

# PostgreSQL's TAP modules (PostgreSQL::Test::Cluster), which the operations suite uses: pure
# Perl, installed by `make install` only with --enable-tap-tests (which needs IPC::Run at
# configure time), so copied from the source tree instead. $1: the unpacked source.
# Where PGXS puts the test programs: the TAP modules go beside them.
tap_dir() { echo "$(dirname "$("$prefix/bin/pg_config" --pgxs)")/../test/perl"; }
install_tap_modules() {
  mkdir -p "$(tap_dir)" && cp -R "$1/src/test/perl/PostgreSQL" "$(tap_dir)/"
}

if [ -x "$prefix/bin/pg_config" ] &&
   [ -x "$(dirname "$("$prefix/bin/pg_config" --pgxs)")/../test/isolation/pg_isolation_regress" ]; then
  if ! [ -f "$(tap_dir)/PostgreSQL/Test/Cluster.pm" ]; then
    # A build cached before the TAP modules were part of it: take them from its tarball.
    tarball=$(find "$cache/src" -maxdepth 1 -name "postgresql-${major}_*.orig.tar.*" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$tarball" ] || { log "no source tarball left in $cache/src for the TAP modules"; exit 1; }
    tmp=$(mktemp -d)
    tar -xf "$tarball" -C "$tmp" --strip-components=1 --wildcards '*/src/test/perl/*'
    install_tap_modules "$tmp"
    rm -rf "$tmp"
    log "TAP modules added from $(basename "$tarball")"
  fi
  echo "$prefix/bin/pg_config"
  exit 0
fi

need=(bison flex libreadline-dev zlib1g-dev libssl-dev dpkg-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$cache/apt/lists/partial" "$cache/src"
cat >"$cache/apt/sources.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o "Dir::Etc::sourcelist=$cache/apt/sources.sources" -o Dir::Etc::sourceparts=/dev/null
          -o "Dir::State::Lists=$cache/apt/lists")
log "apt-get update (private sources: $suite)"
apt-get "${apt_opts[@]}" update -qq >&2
cd "$cache/src"
tarball=
if apt-get "${apt_opts[@]}" source --download-only -qq "postgresql-$major" >&2 2>/dev/null; then
  tarball=$(find . -maxdepth 1 -name "postgresql-${major}_*.orig.tar.*" | sort -V | tail -n 1)
else
  indexed=$(apt-cache "${apt_opts[@]}" showsrc "postgresql-$major" | sed -n 's/^Version: //p' | head -n 1)
  upstream=${indexed%%-*}; revision=${indexed#*-}; point=${upstream#*.}
  log "the mirror has no files for $indexed; trying earlier point releases"
  pool=http://deb.debian.org/debian/pool/main/p/postgresql-$major
  for ((p = point - 1; p >= 0 && p >= point - 4; p--)); do
    version=$major.$p
    dsc="postgresql-${major}_${version}-${revision}.dsc"
    if curl -sfo "$dsc" "$pool/${dsc//+/%2b}" && curl -sfO "$pool/postgresql-${major}_${version}.orig.tar.bz2"; then
      want=$(awk '/^Checksums-Sha256:/ {on = 1; next} on && /orig\.tar/ {print $1; exit}' "$dsc")
      got=$(sha256sum "postgresql-${major}_${version}.orig.tar.bz2" | cut -d' ' -f1)
      if [ -n "$want" ] && [ "$want" = "$got" ]; then
        tarball=./postgresql-${major}_${version}.orig.tar.bz2
        log "using $version (sha256 of the tarball = its .dsc's)"
        break
      fi
      log "$version: the tarball's sha256 is not its .dsc's"
    fi
  done
fi
[ -n "$tarball" ] || { log "no source tarball for PostgreSQL $major"; exit 1; }

work=$cache/build$major
rm -rf "$work" && mkdir -p "$work"
tar -xf "$tarball" -C "$work" --strip-components=1
cd "$work"
t0=$(date +%s)
log "configure and build ($(nproc) jobs) into $prefix"
./configure --prefix="$prefix" --without-icu --with-openssl >"$work/configure.log" 2>&1 ||
  { tail -20 "$work/configure.log" >&2; exit 1; }
make -s -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -30 "$work/make.log" >&2; exit 1; }
{
  make -s install
  # pg_regress and the isolation tester, where the tests look for them (.../pgxs/src/test)
  make -s -C src/test/regress install
  make -s -C src/test/isolation install
} >>"$work/make.log" 2>&1
install_tap_modules "$work"
log "built in $(( $(date +%s) - t0 )) s"
echo "$prefix/bin/pg_config"
