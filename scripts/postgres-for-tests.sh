#!/usr/bin/env bash
# Makes a local PostgreSQL for nest-service's database tests, idempotently,
# on a Debian machine (as root): installs Debian's `postgresql` if missing,
# starts the default cluster, and creates the `nest` role (superuser, so that
# each test can create and drop its own database) and the `nest` database.
#
# Prints the URL to export as NEST_TEST_POSTGRES_URL on its last line:
#   export NEST_TEST_POSTGRES_URL="$(scripts/postgres-for-tests.sh | tail -n1)"
set -euo pipefail

ROLE=nest
PASSWORD=nest
DATABASE=nest
HOST=127.0.0.1

log() { echo "postgres-for-tests: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs packages, starts the cluster)"
    exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

# The newest installed major version and its first cluster (Debian makes
# `main` on install); create one if the package's hook did not.
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -n1)"
CLUSTER="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v { print $2; exit }')"
if [ -z "$CLUSTER" ]; then
    CLUSTER=main
    log "creating cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" >&2
fi

if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $4 }' | grep -q online; then
    log "starting cluster $VERSION/$CLUSTER"
    pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

PORT="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $3 }')"

psql_admin() {
    su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtA $*"
}

# Wait (bounded) until the server accepts connections.
for _ in $(seq 1 30); do
    if su postgres -c "pg_isready -q -p $PORT"; then break; fi
    sleep 1
done
su postgres -c "pg_isready -q -p $PORT" || { log "cluster did not become ready"; exit 1; }

if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'\"")" != 1 ]; then
    log "creating role $ROLE"
    psql_admin "-c \"CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD'\"" >&2
fi
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = '$DATABASE'\"")" != 1 ]; then
    log "creating database $DATABASE"
    psql_admin "-c \"CREATE DATABASE $DATABASE OWNER $ROLE\"" >&2
fi

if [ "$PORT" = 5432 ]; then
    echo "postgres://$ROLE:$PASSWORD@$HOST/$DATABASE"
else
    echo "postgres://$ROLE:$PASSWORD@$HOST:$PORT/$DATABASE"
fi
