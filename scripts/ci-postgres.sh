#!/usr/bin/env bash
# Make the local PostgreSQL cluster ready for the streamscore tests (idempotent; Debian/Ubuntu).
#
# 1. installs postgresql-plpython3-<major> and python3-numpy with apt-get, only when missing
#    (the install upgrades the server's minor version: the running server then cannot load
#    PL/Python — "undefined symbol" — until it is restarted, so we restart it after an install);
# 2. starts the cluster when it is down and waits until it accepts connections;
# 3. creates the test database (STREAMSCORE_TEST_POSTGRES_URL, default
#    postgresql://postgres@127.0.0.1:5432/streamscore_test) when missing;
# 4. checks that CREATE EXTENSION plpython3u works there and that the server's Python has numpy.
#
# Needs root for apt-get and pg_ctlcluster. Called by .ci/run; safe to run again.
set -euo pipefail

URL="${STREAMSCORE_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/streamscore_test}"
CLUSTER="${STREAMSCORE_PG_CLUSTER:-main}"

log() { printf 'ci-postgres: %s\n' "$*"; }

if ! command -v pg_lsclusters >/dev/null; then
    log "no PostgreSQL server packages (pg_lsclusters missing): apt-get install postgresql first"
    exit 1
fi
MAJOR="${STREAMSCORE_PG_MAJOR:-$(ls /etc/postgresql | sort -V | tail -n 1)}"
log "PostgreSQL ${MAJOR}/${CLUSTER}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
# libopenblas0-pthread: Debian's numpy uses the reference BLAS otherwise (PL/Python scoring 2x slower)
for package in "postgresql-plpython3-${MAJOR}" python3-numpy libopenblas0-pthread; do
    installed "$package" || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
    log "restarting the cluster so that it loads the upgraded server binaries"
    pg_ctlcluster --skip-systemctl-redirect "$MAJOR" "$CLUSTER" restart
fi

status="$(pg_lsclusters --no-header | awk -v v="$MAJOR" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}')"
if [[ "$status" != online* ]]; then
    log "cluster is ${status:-unknown}: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$MAJOR" "$CLUSTER" start
fi

# the server part of the URL, pointed at the maintenance database "postgres"
DATABASE="${URL##*/}"
DATABASE="${DATABASE%%\?*}"
SERVER="${URL%/*}"
ADMIN_URL="${SERVER}/postgres"

for _ in $(seq 1 60); do
    if psql "$ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    sleep 1
done
psql "$ADMIN_URL" -qtAc 'SELECT 1' >/dev/null || { log "the server does not accept connections"; exit 1; }

if [[ -z "$(psql "$ADMIN_URL" -qtA -v db="$DATABASE" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")" ]]; then
    log "creating database ${DATABASE}"
    psql "$ADMIN_URL" -q -v ON_ERROR_STOP=1 -v db="$DATABASE" <<<'CREATE DATABASE :"db"'
fi

psql "$SERVER/$DATABASE" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION IF NOT EXISTS plpython3u;
DO $$
import numpy
plpy.notice("PL/Python " + __import__("sys").version.split()[0] + ", numpy " + numpy.__version__)
$$ LANGUAGE plpython3u;
SQL
log "ready: plpython3u and numpy work in ${DATABASE}"
