"""What the runbook says about each check: its step, its layer, its fix, its alerts.

This is the one place that ties ``docs/runbook.md`` to the checks; a unit test
holds the two in agreement both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

RUNBOOK = "docs/runbook.md"

# The runbook: "If not resolved within 15 minutes: page team lead".
ESCALATE_AFTER_MIN = 15
ESCALATION = (
    "page the team lead, notify stakeholders in Slack #incidents, consider failover procedures"
)


class Safety(Enum):
    """What running a command does to the stack; shown beside every command."""

    READ_ONLY = "read-only"
    MUTATING = "mutating"
    DESTRUCTIVE = "destructive"


class Layer(IntEnum):
    """Where a check sits: a failure in a lower layer can explain one above it."""

    CONTAINER = 0
    RESOURCES = 1
    READINESS = 2
    NETWORK = 3
    API = 4
    # Error lines in the logs are a symptom of almost anything else.
    LOGS = 5


@dataclass(frozen=True)
class Command:
    """A shell command template (``string.Template``: ``$compose``, ``$service``…)."""

    template: str
    safety: Safety


@dataclass(frozen=True)
class Entry:
    check: str
    title: str
    layer: Layer
    # Order among checks of one layer on the same service or edge: a lower rank
    # explains a higher one; equal ranks are independent siblings.
    rank: int
    step: str  # anchor of the diagnosis step this check implements
    fix: str  # anchor of the resolution step for its failure
    commands: tuple[Command, ...]
    alerts: tuple[str, ...]
    # Network checks only: which layers of the *target* service they rely on.
    target_layers: tuple[Layer, ...] = ()


# Anchor -> heading, for every step the checks name.
STEPS = {
    "diagnose-container-status": "Container status",
    "diagnose-logs": "Container logs",
    "diagnose-resources": "Memory and CPU",
    "diagnose-database": "Database readiness and connections",
    "diagnose-network": "Network between services",
    "diagnose-health-endpoint": "Health endpoint",
    "resolve-start-container": "Start a stopped container",
    "resolve-crash-loop": "Find why a container keeps restarting",
    "resolve-unhealthy": "Read a failing Docker health check",
    "resolve-resources": "Relieve memory or CPU pressure",
    "resolve-database": "Bring the database back",
    "resolve-connections": "Free database connections",
    "resolve-network": "Repair the path between services",
    "resolve-manual-restart": "Restart the service by hand",
}

ALERTS = {
    "api_service_down": "APIServiceDown: the backend API is unreachable (the runbook's own alert)",
    "health_check_failing": "HealthCheckFailing: a health check or endpoint reports unhealthy",
    "database_connection_failed": "DatabaseConnectionFailed: the API cannot use its database",
    "high_error_rate": "HighErrorRate: the API answers, but with errors",
}

# The runbook's post-incident checklist, copied into every incident note.
POST_INCIDENT = (
    "Document the root cause in the incident report",
    "Update the runbook if a new failure mode was discovered",
    "Consider preventive measures (monitoring, scaling, etc.)",
)

_R, _M, _D = Safety.READ_ONLY, Safety.MUTATING, Safety.DESTRUCTIVE
_ALL = ("api_service_down",)
_PS = Command("$compose ps $service", _R)
_LOGS_GREP = Command('$compose logs --tail=200 $service | grep -i "error\\|exception\\|fatal"', _R)
_STATS = Command("$docker stats --no-stream $container", _R)
# Compose v1 has no `down SERVICE`; `rm --stop --force` removes just that
# container on v1 and v2 alike.
_REMOVE = Command("$compose rm --stop --force $service", _D)
_UP = Command("$compose up -d $service", _M)

_ENTRIES = (
    Entry(
        "container_running",
        "container is running",
        Layer.CONTAINER,
        1,
        "diagnose-container-status",
        "resolve-start-container",
        (_PS, Command("$compose logs --tail=100 $service", _R), _UP),
        (*_ALL, "health_check_failing", "database_connection_failed"),
    ),
    Entry(
        "container_stable",
        "container is not crash-looping or OOM-killed",
        Layer.CONTAINER,
        0,
        "diagnose-container-status",
        "resolve-crash-loop",
        (
            Command(
                "$docker inspect --format "
                "'exit={{.State.ExitCode}} oom={{.State.OOMKilled}} restarts={{.RestartCount}}' "
                "$container",
                _R,
            ),
            _LOGS_GREP,
            _STATS,
        ),
        (*_ALL, "database_connection_failed", "high_error_rate"),
    ),
    Entry(
        "container_healthy",
        "Docker health check passes",
        Layer.READINESS,
        1,
        "diagnose-container-status",
        "resolve-unhealthy",
        (
            Command("$docker inspect --format '{{json .State.Health}}' $container", _R),
            _PS,
            Command("$compose restart $service", _M),
        ),
        (*_ALL, "health_check_failing"),
    ),
    Entry(
        "logs_clean",
        "no error lines in recent logs",
        Layer.LOGS,
        0,
        "diagnose-logs",
        "resolve-crash-loop",
        (_LOGS_GREP, Command("$compose logs --tail=100 $service", _R)),
        (*_ALL, "high_error_rate"),
    ),
    Entry(
        "memory_headroom",
        "memory use below the limit",
        Layer.RESOURCES,
        0,
        "diagnose-resources",
        "resolve-resources",
        (_STATS, _UP),
        (*_ALL, "high_error_rate"),
    ),
    Entry(
        "cpu_headroom",
        "CPU use below the limit",
        Layer.RESOURCES,
        0,
        "diagnose-resources",
        "resolve-resources",
        (_STATS, _UP),
        (*_ALL, "high_error_rate"),
    ),
    Entry(
        "pg_ready",
        "PostgreSQL accepts connections",
        Layer.READINESS,
        0,
        "diagnose-database",
        "resolve-database",
        (
            Command("$compose exec $service pg_isready -U $pg_user", _R),
            Command("$compose restart $service", _M),
            Command("$compose restart $dependents", _M),
        ),
        (*_ALL, "health_check_failing", "database_connection_failed"),
    ),
    Entry(
        "pg_connections",
        "PostgreSQL has free connection slots",
        Layer.READINESS,
        1,
        "diagnose-database",
        "resolve-connections",
        (
            Command(
                "$compose exec $service psql -U $pg_user -d $pg_dbname "
                '-c "SELECT count(*) FROM pg_stat_activity;"',
                _R,
            ),
            Command(
                "$compose exec $service psql -U $pg_user -d $pg_dbname "
                '-c "SELECT usename, application_name, state, count(*) '
                'FROM pg_stat_activity GROUP BY 1, 2, 3 ORDER BY 4 DESC;"',
                _R,
            ),
            Command("$compose restart $dependents", _M),
        ),
        (*_ALL, "database_connection_failed", "high_error_rate"),
    ),
    Entry(
        "net_resolve",
        "the target's service name resolves",
        Layer.NETWORK,
        0,
        "diagnose-network",
        "resolve-network",
        (
            Command("$compose exec $service getent hosts $target", _R),
            Command("$compose ps $target", _R),
            Command("$compose up -d --force-recreate $target", _M),
        ),
        (*_ALL, "database_connection_failed"),
        target_layers=(Layer.CONTAINER,),
    ),
    Entry(
        "net_ping",
        "the target answers ping",
        Layer.NETWORK,
        1,
        "diagnose-network",
        "resolve-network",
        (
            Command("$compose exec $service ping -c 3 $target", _R),
            Command("$compose ps $target", _R),
        ),
        (*_ALL, "database_connection_failed"),
        target_layers=(Layer.CONTAINER,),
    ),
    Entry(
        "net_port",
        "the target's port accepts TCP connections",
        Layer.NETWORK,
        2,
        "diagnose-network",
        "resolve-network",
        (
            Command("$compose exec $service nc -zv $target $target_port", _R),
            Command("$compose ps $target", _R),
        ),
        (*_ALL, "database_connection_failed"),
        # The port is answered by the target's process, not just its container.
        target_layers=(Layer.CONTAINER, Layer.READINESS),
    ),
    Entry(
        "http_health",
        "the health endpoint answers 200",
        Layer.API,
        0,
        "diagnose-health-endpoint",
        "resolve-manual-restart",
        (
            Command("curl -v $health_url", _R),
            Command("$compose logs --tail=100 $service", _R),
            _REMOVE,
            _UP,
            Command("$compose logs -f --tail=50 $service", _R),
        ),
        (*_ALL, "health_check_failing", "high_error_rate"),
    ),
)

# In model.CHECKS order (a unit test holds them equal).
CATALOGUE: dict[str, Entry] = {e.check: e for e in _ENTRIES}
