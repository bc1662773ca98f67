#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests on 127.0.0.1:55432
# (trust authentication, data in a temporary folder) and prints its URL.
# Needs Debian's postgresql package; run as root or as any user.
#   eval "$(scripts/test-postgres.sh)"   # exports MENSA_TEST_POSTGRES_URL
set -euo pipefail
port=${MENSA_TEST_POSTGRES_PORT:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2; exit 1; }
data=$(mktemp -d /tmp/mensa-pg.XXXXXX)
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$data"
run "$bin/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
run "$bin/pg_ctl" -D "$data" -o "-k /tmp -p $port -h 127.0.0.1 -c fsync=off" -l "$data/log" -w start >/dev/null
echo "export MENSA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
echo "export MENSA_TEST_POSTGRES_DATA=$data"
