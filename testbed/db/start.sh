#!/bin/sh
# PostgreSQL 15 for the testbed: a fresh cluster each time the container
# starts (the data directory is a tmpfs volume, see docker-compose.yml), an
# unprivileged application role, password auth over TCP.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
APP_USER="${APP_USER:-scheduler}"
MAX_CONNECTIONS="${MAX_CONNECTIONS:-30}"
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
mkdir -p /run/postgresql "$PGDATA"
chown postgres:postgres /run/postgresql "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" -A scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$BIN/postgres" --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE ROLE $APP_USER LOGIN PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE $APP_USER OWNER $APP_USER;
SQL
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections="$MAX_CONNECTIONS"
