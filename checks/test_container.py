"""Runbook Quick diagnosis 1 and Step 1: is each service's container up, and staying up?"""

import pytest

from stackcheck import expect
from stackcheck.config import Stack
from stackcheck.probes.facts import ContainerFacts


def _where(c: ContainerFacts, stack: Stack) -> str:
    return f"no container for service '{c.service}' in compose project '{stack.compose_project}'"


def test_container_running(container: ContainerFacts, stack: Stack) -> None:
    expect(container.error is None, container.error or "")
    expect(container.found, _where(container, stack) + " (never created, or removed)")
    if container.state == "restarting":
        since = f"; last exit code {container.exit_code} at {container.finished_at}"
    elif container.state == "paused":
        since = f"; running since {container.started_at}, processes frozen"
    else:
        since = f" (exit code {container.exit_code}) since {container.finished_at}"
    expect(container.state == "running", f"container {container.name} is {container.state}{since}")


def test_container_stable(container: ContainerFacts, stack: Stack) -> None:
    expect(container.error is None, container.error or "")
    expect(container.found, _where(container, stack))
    name, window = container.name, f"{stack.thresholds.stable_window_s:g} s"
    codes = ", ".join(str(c) for c in container.recent_exit_codes) or "unknown"
    expect(
        container.state != "restarting",
        f"container {name} is crash-looping: restarting after exit code {container.exit_code}, "
        f"{container.restart_count} restarts so far",
    )
    expect(
        not container.oom_killed and container.recent_ooms == 0,
        f"container {name} was OOM-killed (exit code 137) "
        f"{max(container.recent_ooms, 1)} time(s) in the last {window}; "
        f"restart count {container.restart_count}",
    )
    # A restart by the restart policy leaves a 'die' event and bumps the count;
    # a manual `docker restart` does not bump it, so it is not flagged.
    expect(
        not (container.restart_count > 0 and container.recent_dies > 0),
        f"container {name} restarted: {container.recent_dies} exit(s) in the last {window} "
        f"(exit codes {codes}), restart count {container.restart_count}",
    )


def test_container_healthy(container: ContainerFacts, stack: Stack) -> None:
    expect(container.error is None, container.error or "")
    expect(container.found, _where(container, stack))
    if container.health_status is None:
        pytest.skip(f"container {container.name} has no HEALTHCHECK")
    expect(
        container.state == "running",
        f"container {container.name} is {container.state}: its health check is not running",
    )
    output = f": {container.health_output}" if container.health_output else ""
    expect(
        container.health_status == "healthy",
        f"container {container.name} health check reports {container.health_status}{output}",
    )
