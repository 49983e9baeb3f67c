"""Runbook Quick diagnosis 1 and Step 1: is each service's container up, and staying up?"""

import pytest

from stackcheck import Command, Fix, Layer, Safety, check, expect
from stackcheck.config import Stack
from stackcheck.probes.facts import ContainerFacts
from stackcheck.runbook import (
    ALL,
    DIAGNOSE_CONTAINER,
    LOGS,
    LOGS_GREP,
    PS,
    RESOLVE_CRASH_LOOP,
    RESOLVE_RESOURCES,
    RESOLVE_START,
    RESOLVE_UNHEALTHY,
    RESTART,
    STATS,
    UP,
)

INSPECT_EXIT = Command(
    "$docker inspect --format "
    "'exit={{.State.ExitCode}} oom={{.State.OOMKilled}} restarts={{.RestartCount}}' $container",
    Safety.READ_ONLY,
)
# The runbook sends an OOM kill to its memory step, not to the crash-loop step.
OOM_FIX = Fix(
    RESOLVE_RESOURCES,
    (
        Command(
            "$docker inspect --format "
            "'oom={{.State.OOMKilled}} mem_limit={{.HostConfig.Memory}}' $container",
            Safety.READ_ONLY,
        ),
        STATS,
        UP,
    ),
)


def _where(c: ContainerFacts, stack: Stack) -> str:
    return f"no container for service '{c.service}' in compose project '{stack.compose_project}'"


@check(
    title="container is running",
    layer=Layer.CONTAINER,
    rank=1,
    step=DIAGNOSE_CONTAINER,
    fix=Fix(RESOLVE_START, (PS, LOGS, UP)),
    alerts=(*ALL, "health_check_failing", "database_connection_failed"),
)
def test_container_running(container: ContainerFacts, stack: Stack) -> None:
    expect(container.found, _where(container, stack) + " (never created, or removed)")
    if container.state == "restarting":
        since = f"; last exit code {container.exit_code} at {container.finished_at}"
    elif container.state == "paused":
        since = f"; running since {container.started_at}, processes frozen"
    else:
        since = f" (exit code {container.exit_code}) since {container.finished_at}"
    expect(container.state == "running", f"container {container.name} is {container.state}{since}")


@check(
    title="container is not crash-looping or OOM-killed",
    layer=Layer.CONTAINER,
    rank=0,
    step=DIAGNOSE_CONTAINER,
    fix=Fix(RESOLVE_CRASH_LOOP, (INSPECT_EXIT, LOGS_GREP, STATS)),
    other_fixes=(OOM_FIX,),
    alerts=(*ALL, "database_connection_failed", "high_error_rate"),
)
def test_container_stable(container: ContainerFacts, stack: Stack) -> None:
    expect(container.found, _where(container, stack))
    name, window = container.name, f"{stack.thresholds.stable_window_s:g} s"
    codes = ", ".join(str(c) for c in container.recent_exit_codes) or "unknown"
    looping = container.state == "restarting"
    now = (
        f"; crash-looping now: restarting, {container.restart_count} restarts so far"
        if looping
        else f"; restart count {container.restart_count}"
    )
    limit = (
        f" against its memory limit of {container.mem_limit / 2**20:.0f} MiB"
        if container.mem_limit
        else " (no container memory limit: the host ran out)"
    )
    # Checked first: an OOM kill that now loops is still an OOM kill.
    expect(
        not container.oom_killed and container.recent_ooms == 0,
        f"container {name} was OOM-killed by the kernel{limit}: "
        f"{max(container.recent_ooms, 1)} time(s) in the last {window} (exit code 137){now}",
        fix=OOM_FIX,
    )
    expect(
        not looping,
        f"container {name} is crash-looping: restarting after exit code {container.exit_code}, "
        f"{container.restart_count} restarts so far",
    )
    # A restart by the restart policy leaves a 'die' event and bumps the count;
    # a manual `docker restart` does not bump it, so it is not flagged.
    expect(
        not (container.restart_count > 0 and container.recent_dies > 0),
        f"container {name} restarted: {container.recent_dies} exit(s) in the last {window} "
        f"(exit codes {codes}), restart count {container.restart_count}",
    )


@check(
    title="Docker health check passes",
    layer=Layer.READINESS,
    rank=1,
    step=DIAGNOSE_CONTAINER,
    fix=Fix(
        RESOLVE_UNHEALTHY,
        (
            Command(
                "$docker inspect --format '{{json .State.Health}}' $container", Safety.READ_ONLY
            ),
            PS,
            RESTART,
        ),
    ),
    alerts=(*ALL, "health_check_failing"),
)
def test_container_healthy(container: ContainerFacts, stack: Stack) -> None:
    expect(container.found, _where(container, stack))
    if container.health_status is None:
        pytest.skip(f"container {container.name} has no HEALTHCHECK: does not apply")
    expect(
        container.state == "running",
        f"container {container.name} is {container.state}: its health check is not running",
    )
    output = f": {container.health_output}" if container.health_output else ""
    expect(
        container.health_status == "healthy",
        f"container {container.name} health check reports {container.health_status}{output}",
    )
