#!/usr/bin/env bash
# The runbook "API Service Down" by hand: its Quick Diagnosis and Steps 1-4,
# one command after another, as an on-call engineer pastes them.
#
#   bench/runbook_by_hand.sh PROJECT BACKEND_PORT [docker|compose]
#
# docker  (default) plain docker CLI commands by container name: what
#         `docker compose` v2 (a Go plugin) costs, the fastest a human gets.
# compose docker-compose v1 (what this machine has), as the runbook is written;
#         needs the testbed's compose variables (DB_IMAGE, BACKEND_IMAGE,
#         TESTBED_DB_PASSWORD, TESTBED_DB_PORT, TESTBED_BACKEND_PORT).
# PGPASSWORD must be set (psql asks for it otherwise). The containers are the
# testbed's (compose v1 names them PROJECT_SERVICE_1); only loopback is used.
# The caller bounds the whole script; a failing command does not stop it.
set -u
project=${1:?usage: runbook_by_hand.sh PROJECT BACKEND_PORT [docker|compose]}
port=${2:?usage: runbook_by_hand.sh PROJECT BACKEND_PORT [docker|compose]}
mode=${3:-docker}
here=$(cd "$(dirname "$0")/.." && pwd)
backend=${project}_backend_1
db=${project}_db_1
: "${PGPASSWORD:?set PGPASSWORD}"

if [ "$mode" = compose ]; then
    dc() { docker-compose -p "$project" -f "$here/testbed/docker-compose.yml" "$@"; }
    ps_backend() { dc ps backend; }
    ps_all() { dc ps; }
    logs_backend() { dc logs --tail=100 backend; }
    in_db() { dc exec -T -e PGPASSWORD="$PGPASSWORD" db "$@"; }
    in_backend() { dc exec -T backend "$@"; }
else
    label=label=com.docker.compose.project=$project
    ps_backend() { docker ps -a --filter "$label" --filter label=com.docker.compose.service=backend; }
    ps_all() { docker ps -a --filter "$label"; }
    logs_backend() { docker logs --tail=100 "$backend"; }
    in_db() { docker exec -e PGPASSWORD="$PGPASSWORD" "$db" "$@"; }
    in_backend() { docker exec "$backend" "$@"; }
fi

# Quick Diagnosis 1-4. `docker stats --no-stream` alone lists every container
# on the host; on this shared machine it is limited to the stack's two.
ps_backend
logs_backend
curl -v "http://127.0.0.1:$port/health"
echo
docker stats --no-stream "$backend" "$db"

# Step 1: container status.
ps_all
# Step 2: database connectivity.
in_db pg_isready -U scheduler
in_db psql -U scheduler -c "SELECT count(*) FROM pg_stat_activity;"
# Step 3: memory/CPU.
docker stats --no-stream "$backend" "$db"
# Step 4: network between the services.
in_backend ping -c 3 db
in_backend nc -zv db 5432
