"""The runbook "API Service Down" (docs/runbook.md): its steps, alerts, escalation.

The checks in ``checks/`` name these steps; a unit test holds this module, the
checks and the document in agreement both ways.
"""

from __future__ import annotations

from stackcheck.definition import Command, Safety, Step

# Diagnosis steps, in the runbook's order.
DIAGNOSE_CONTAINER = Step("diagnose-container-status", "Container status")
DIAGNOSE_LOGS = Step("diagnose-logs", "Container logs")
DIAGNOSE_RESOURCES = Step("diagnose-resources", "Memory and CPU")
DIAGNOSE_DATABASE = Step("diagnose-database", "Database readiness and connections")
DIAGNOSE_NETWORK = Step("diagnose-network", "Network between services")
DIAGNOSE_HEALTH = Step("diagnose-health-endpoint", "Health endpoint")
# Added after the original six; it sits in the resources layer of the root-cause order.
DIAGNOSE_DATA_DISK = Step("diagnose-data-disk", "Database disk space")
# The Docker host under every container: the layer beneath all the others.
DIAGNOSE_HOST = Step("diagnose-host", "The Docker host")

# Resolution steps.
RESOLVE_START = Step("resolve-start-container", "Start a stopped container")
RESOLVE_CRASH_LOOP = Step("resolve-crash-loop", "Find why a container keeps restarting")
RESOLVE_UNHEALTHY = Step("resolve-unhealthy", "Read a failing Docker health check")
RESOLVE_RESOURCES = Step("resolve-resources", "Relieve memory or CPU pressure")
RESOLVE_DATABASE = Step("resolve-database", "Bring the database back")
RESOLVE_CONNECTIONS = Step("resolve-connections", "Free database connections")
RESOLVE_DATA_DISK = Step("resolve-data-disk", "Free space on the database's disk")
RESOLVE_NETWORK = Step("resolve-network", "Repair the path between services")
RESOLVE_MANUAL_RESTART = Step("resolve-manual-restart", "Restart the service by hand")
RESOLVE_HOST_ENGINE = Step("resolve-host-engine", "Start the Docker engine")
RESOLVE_HOST_DISK = Step("resolve-host-disk", "Free disk space on the Docker host")
RESOLVE_HOST_MEMORY = Step("resolve-host-memory", "Relieve the Docker host's memory")

STEPS = (
    DIAGNOSE_CONTAINER,
    DIAGNOSE_LOGS,
    DIAGNOSE_RESOURCES,
    DIAGNOSE_DATABASE,
    DIAGNOSE_NETWORK,
    DIAGNOSE_HEALTH,
    DIAGNOSE_DATA_DISK,
    DIAGNOSE_HOST,
    RESOLVE_START,
    RESOLVE_CRASH_LOOP,
    RESOLVE_UNHEALTHY,
    RESOLVE_RESOURCES,
    RESOLVE_DATABASE,
    RESOLVE_CONNECTIONS,
    RESOLVE_DATA_DISK,
    RESOLVE_NETWORK,
    RESOLVE_MANUAL_RESTART,
    RESOLVE_HOST_ENGINE,
    RESOLVE_HOST_DISK,
    RESOLVE_HOST_MEMORY,
)

# Alert name (a pytest marker) -> what it means.
ALERTS = {
    "api_service_down": "APIServiceDown: the backend API is unreachable (the runbook's own alert)",
    "health_check_failing": "HealthCheckFailing: a health check or endpoint reports unhealthy",
    "database_connection_failed": "DatabaseConnectionFailed: the API cannot use its database",
    "high_error_rate": "HighErrorRate: the API answers, but with errors",
}

# The runbook: "If not resolved within 15 minutes: page team lead".
ESCALATE_AFTER_MIN = 15
ESCALATION = (
    "page the team lead, notify stakeholders in Slack #incidents, consider failover procedures"
)
POST_INCIDENT_STEP = Step("post-incident", "Post-incident")

# The runbook's post-incident checklist, copied into every incident note.
POST_INCIDENT = (
    "Document the root cause in the incident report",
    "Update the runbook if a new failure mode was discovered",
    "Consider preventive measures (monitoring, scaling, etc.)",
)

# Commands several checks suggest (``$compose`` carries the engine, project and file).
PS = Command("$compose ps $service", Safety.READ_ONLY)
LOGS = Command("$compose logs --tail=100 $service", Safety.READ_ONLY)
LOGS_GREP = Command(
    '$compose logs --tail=200 $service | grep -i "error\\|exception\\|fatal"', Safety.READ_ONLY
)
STATS = Command("$docker stats --no-stream $container", Safety.READ_ONLY)
UP = Command("$compose up -d $service", Safety.MUTATING)
RESTART = Command("$compose restart $service", Safety.MUTATING)
RESTART_DEPENDENTS = Command("$compose restart $dependents", Safety.MUTATING)
# Compose v1 has no `down SERVICE`; `rm --stop --force` removes just that
# container on v1 and v2 alike.
REMOVE = Command("$compose rm --stop --force $service", Safety.DESTRUCTIVE)
PS_TARGET = Command("$compose ps $target", Safety.READ_ONLY)

# For one replica of a scaled service, compose's per-service commands would act
# on every replica: these act on the replica's own container instead.
REPLICA_TEMPLATES = {
    RESTART.template: "$docker restart $container",
    REMOVE.template: "$docker rm --force $container",
}

# Every check is called for by the runbook's own alert.
ALL = ("api_service_down",)
