"""A testbed whose database port is published nowhere, checked from inside its containers.

The stack file says ``postgres_via = "exec"`` for db and ``health_via = "exec"``
for backend: pg_isready and the pg_stat_activity count run in db's container,
the health URL is fetched by curl in backend's, all through the engine. The
verdicts must be the ones the published testbed gets through its DSN and URL
(tests/integration/test_checks_faults.py's table), with no password given to
the checker at all: psql inside takes the container's own.

One extra compose project for this module (its own lock, removed at the end).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import CANARY_PASSWORD, Testbed
from tests.checkrun import CheckRun, check_ids, run_checks
from tests.conftest import _project_lock, _testbed_settings, record_timing
from tests.integration.test_checks_faults import ALWAYS_SKIPPED, EXPECTED_FAILURES, _settle

FAULTS = ("db-stopped", "db-hung", "db-connections-near-limit", "health-500")


@pytest.fixture(scope="module")
def unpublished(testbed: Testbed) -> Iterator[Testbed]:
    """The testbed again, as project <project>-unpub, with db's port unpublished."""
    project, backend_port, _ = _testbed_settings()
    bed = Testbed(
        project=f"{project}-unpub",
        backend_port=backend_port + 50,
        db_port=testbed.db_port,  # not published: only compose's variable needs a value
        publish_db=False,
    )
    with _project_lock(bed.project):
        try:
            bed.up()
            yield bed
        finally:
            if not os.environ.get("STACKCHECK_TESTBED_KEEP"):
                bed.down()


# Each in-container probe is an exec through the engine (pg_isready and psql
# behind Debian's Perl wrapper): on a machine shared by several Docker test
# suites that can take seconds. A wider deadline keeps a slow engine from
# turning a verdict into "could not check"; the verdicts themselves do not
# depend on it (pg_isready waits connect_s, 3 s, for a frozen server).
PROBE_S = 10


@pytest.fixture
def stack_file(unpublished: Testbed, tmp_path: Path) -> Path:
    path = unpublished.write_stack_file(tmp_path / "stack.toml")
    path.write_text(path.read_text() + f"\n[timeouts]\nprobe_s = {PROBE_S}\n")
    return path


def _run(stack_file: Path, tmp_path: Path) -> CheckRun:
    # No PGPASSWORD: the in-container path needs none from the checker.
    return run_checks("--stack", str(stack_file), tmp_path=tmp_path, env={"PGPASSWORD": ""})


def _evidence(run: CheckRun, project: str, key: str) -> str:
    checks = run.summary(project)["checks"]
    return str(next(c["evidence"] for c in checks if c["key"] == key))


def test_the_database_port_is_published_nowhere(unpublished: Testbed, stack_file: Path) -> None:
    ports = unpublished.container("db").attrs["NetworkSettings"]["Ports"]
    assert ports.get("5432/tcp") is None, ports
    text = stack_file.read_text()
    assert "postgres_dsn" not in text and 'postgres_via = "exec"' in text
    assert 'health_via = "exec"' in text


def test_healthy_stack_all_green_from_inside(
    unpublished: Testbed, stack_file: Path, tmp_path: Path
) -> None:
    run = _run(stack_file, tmp_path)
    expected = check_ids(stack_file)
    where = f"{run.failed() | run.errors()}\n{run.stdout[-3000:]}"
    assert run.returncode == 0, where
    assert run.skipped() == ALWAYS_SKIPPED, where
    assert run.passed() == expected - ALWAYS_SKIPPED, where
    assert CANARY_PASSWORD not in run.stdout + run.stderr


@pytest.mark.parametrize("name", FAULTS)
def test_fault_fails_the_same_checks_as_through_the_dsn(
    unpublished: Testbed, stack_file: Path, tmp_path: Path, name: str
) -> None:
    try:
        unpublished.inject(name)
        _settle(unpublished, name)
        run = _run(stack_file, tmp_path)
    finally:
        unpublished.reset()
    messages = "\n\n".join(f"{k}: {v}" for k, v in run.messages.items())
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failed() == EXPECTED_FAILURES[name], messages
    assert run.errors() == set(), messages
    assert CANARY_PASSWORD not in run.stdout + run.stderr
    project = unpublished.project
    if name == "db-hung":
        # pg_isready's own outcome (exit 2), where it asked, as the DSN path words it.
        evidence = _evidence(run, project, "db:pg_ready")
        assert "pg_isready on /var/run/postgresql:5432: no response" in evidence, evidence
    elif name == "db-connections-near-limit":
        evidence = _evidence(run, project, "db:pg_connections")
        assert "22 of 27 usable connections in use" in evidence, evidence
        assert "max_connections 30, 3 reserved" in evidence, evidence
    elif name == "health-500":
        evidence = _evidence(run, project, "backend:http_health")
        assert "GET http://127.0.0.1:8000/health answered 500" in evidence, evidence
        assert "injected fault" in evidence, evidence
    elif name == "db-stopped":
        # Nothing answers in a stopped container, as a refused connection reads;
        # the hint names the in-container command the runbook uses.
        message = run.messages["test_pg_ready[db]"]
        assert "pg_isready on inside db: no response" in message, message
        assert "exec db pg_isready -U scheduler" in message, message
    record_timing(f"unpublished {name}: run", run.wall_s)
