"""A stale container next to the running one must not turn a healthy service red.

A container with the backend's compose labels, created but never started (what
an interrupted `up` or a `docker create` by hand leaves), and named so that it
sorts before the running one: the checks must judge the running container, so
every check passes and the stack is healthy, with no `up -d` fix anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from docker.models.containers import Container

from testbed import Testbed
from tests.checkrun import check_ids, run_checks

# The testbed's backend image has no HEALTHCHECK: its container_healthy is always skipped.
ALWAYS_SKIPPED = {"test_container_healthy[backend]"}


@pytest.fixture
def stale_backend(testbed: Testbed) -> Iterator[Container]:
    running = testbed.container("backend")
    assert running.status == "running"
    name = f"{testbed.project}-backend-0-stale"
    # Sorting by name alone would pick the stale one: this is what makes the test bite.
    assert name < (running.name or ""), (name, running.name)
    stale = testbed.client.containers.create(
        running.image.id, name=name, labels=dict(running.labels)
    )
    try:
        yield stale
    finally:
        # The testbed's reset and dirt look only at the running container (and a
        # recreate of the service might adopt this one): it is removed here, always.
        with contextlib.suppress(docker.errors.NotFound):
            stale.remove(force=True)


def test_stale_created_container_beside_the_running_one(
    testbed: Testbed, stale_backend: Container, tmp_path: Path
) -> None:
    stale_backend.reload()
    assert stale_backend.status == "created"
    assert stale_backend.labels["com.docker.compose.service"] == "backend"
    assert stale_backend.labels["com.docker.compose.project"] == testbed.project

    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    expected = check_ids(stack_file)
    run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
    where = "\n\n".join(f"{k}: {v}" for k, v in run.messages.items()) + run.stdout[-3000:]
    assert run.failed() == set(), where
    assert run.errors() == set(), where
    assert run.skipped() == ALWAYS_SKIPPED, where
    assert run.passed() == expected - ALWAYS_SKIPPED, where
    assert run.returncode == 0, where
    summary = run.summary(testbed.project)
    assert summary["status"] == "healthy", where
    assert summary["root_causes"] == [], where
    assert "up -d" not in run.stdout, where
    assert stale_backend.name not in run.stdout, where
