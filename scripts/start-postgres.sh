#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for tests (CI and local runs) and prints its URL.
#   bash scripts/start-postgres.sh [DIR] [PORT]
# The server binaries (initdb, pg_ctl) refuse to run as root, so they run as the `postgres` user.
# Authentication is `trust` on 127.0.0.1 only: never use this for real data.
set -euo pipefail

dir=${1:-/tmp/remotegpu-pg}
port=${2:-54329}
bindir=$(dirname "$(command -v initdb || echo /usr/local/bin/initdb)")
run_as=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /bin/sh postgres
  run_as=(runuser -u postgres --)
fi

if [ ! -s "$dir/PG_VERSION" ]; then
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  "${run_as[@]}" "$bindir/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
fi

if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c max_connections=300 -c fsync=off -c unix_socket_directories=$dir" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"
