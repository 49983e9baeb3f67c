"""Shared fixtures: the testbed stack (session) and fault injection (per test).

The testbed is one compose project on loopback ports. Override with
STACKCHECK_TESTBED_PROJECT / _BACKEND_PORT / _DB_PORT; under pytest-xdist every
worker gets its own project and ports. A lock file keeps two pytest sessions
from sharing (and tearing down) the same project at once. Set
STACKCHECK_TESTBED_KEEP=1 to leave the stack running after the session.

Opt in: a bare `pytest` must never start containers (or install and start a
Docker engine), so every test that uses the testbed, directly or through other
fixtures, is deselected unless the run says --testbed or STACKCHECK_TESTBED=1.
Deselected, not skipped: a skip reads as "fine here", a deselection says the test
did not run at all, and CI (./run.sh test, tox -e integration) opts in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testbed import CANARY_PASSWORD, Testbed, TestbedError

if TYPE_CHECKING:
    from testbed.remote import RemoteTestbed

ROOT = Path(__file__).resolve().parent.parent
LOCK_WAIT_S = 900.0
TIMINGS: list[tuple[str, float]] = []  # (what, seconds), printed at the end
OPT_IN_ENV = "STACKCHECK_TESTBED"
# `fault` and every other testbed-backed fixture request `testbed` (or, on the
# remote test host, `remote_testbed`), and an item's fixturenames hold its whole
# fixture closure, so these names find them all.
TESTBED_FIXTURES = frozenset({"testbed", "remote_testbed"})
DESELECTED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--testbed",
        action="store_true",
        default=False,
        help=(
            "run the tests that need the testbed: they bring up the testbed compose stack "
            "(containers) on the Docker engine DOCKER_HOST points at (the local socket by "
            "default) and, if no engine answers, first start one with testbed/engine.sh "
            f"(as root on Debian it installs and starts dockerd). Same as {OPT_IN_ENV}=1. "
            "Without it those tests are deselected."
        ),
    )


def testbed_opted_in(config: pytest.Config) -> bool:
    return bool(config.getoption("testbed")) or os.environ.get(OPT_IN_ENV) == "1"


@pytest.hookimpl(trylast=True)  # after -k/-m, so the count is of tests that would have run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if testbed_opted_in(config):
        return
    keep: list[pytest.Item] = []
    need: list[pytest.Item] = []
    for item in items:
        # Doctest items have no fixturenames; they cannot use the testbed.
        names = set(getattr(item, "fixturenames", ()))
        (need if names & TESTBED_FIXTURES else keep).append(item)
    if need:
        config.hook.pytest_deselected(items=need)
        items[:] = keep
    config.stash[DESELECTED] = len(need)


def pytest_report_collectionfinish(config: pytest.Config) -> str | list[str]:
    count = config.stash.get(DESELECTED, 0)
    if not count:
        return []
    how = "deselected; opt in with --testbed (./run.sh test does)"
    if count == 1:
        return f"1 test needs the testbed (it starts containers): {how}"
    return f"{count} tests need the testbed (they start containers): {how}"


def record_timing(what: str, seconds: float) -> None:
    """Note how long a testbed operation took; listed in the terminal summary."""
    TIMINGS.append((what, seconds))


def _testbed_settings() -> tuple[str, int, int]:
    project = os.environ.get("STACKCHECK_TESTBED_PROJECT", "residency-scheduler-testbed")
    backend_port = int(os.environ.get("STACKCHECK_TESTBED_BACKEND_PORT", "18000"))
    db_port = int(os.environ.get("STACKCHECK_TESTBED_DB_PORT", "15432"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if worker.startswith("gw") and worker[2:].isdigit():
        n = int(worker[2:]) + 1
        project, backend_port, db_port = f"{project}-{worker}", backend_port + n, db_port + n
    return project, backend_port, db_port


def _engine_answers() -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def _project_lock(project: str, kind: str = "testbed") -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"stackcheck-{kind}-{project}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"testbed project {project} stayed locked by {path} for {LOCK_WAIT_S:.0f}s"
                    )
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_engine(request: pytest.FixtureRequest) -> None:
    """Fail unless opted in; start an engine (testbed/engine.sh) if none answers."""
    if not testbed_opted_in(request.config):
        # Reached only by a dynamic request.getfixturevalue("testbed"), which the
        # collection-time deselection cannot see; fail loudly rather than start containers.
        pytest.fail(f"the testbed fixture needs --testbed or {OPT_IN_ENV}=1", pytrace=False)
    if not _engine_answers():
        done = subprocess.run(
            [str(ROOT / "testbed" / "engine.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no engine"
            )


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """The testbed stack, up and healthy; removed at the end of the session."""
    _ensure_engine(request)
    project, backend_port, db_port = _testbed_settings()
    with _project_lock(project):
        bed = Testbed(project=project, backend_port=backend_port, db_port=db_port)
        saved = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = CANARY_PASSWORD
        try:
            started = time.monotonic()
            try:
                bed.up()
            except TestbedError as exc:
                pytest.fail(f"testbed did not come up: {exc}")
            record_timing("up", time.monotonic() - started)
            yield bed
        finally:
            if saved is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = saved
            if not os.environ.get("STACKCHECK_TESTBED_KEEP"):
                started = time.monotonic()
                bed.down()
                record_timing("down", time.monotonic() - started)


def _remote_settings() -> tuple[str, int]:
    name = os.environ.get("STACKCHECK_REMOTE_NAME", "sc-dind-test")
    port = int(os.environ.get("STACKCHECK_REMOTE_SSH_PORT", "12223"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        name, port = f"{name}-{worker}", port + 1 + int(worker[2:])
    return name, port


@pytest.fixture(scope="module")
def remote_testbed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteTestbed]:
    """The testbed inside a remote test host (testbed/remote.py), healthy; for one module.

    The checks reach it only by SSH (its stack file); the host, its keys and
    its engine's images are removed after the module. Name and SSH port:
    STACKCHECK_REMOTE_NAME / STACKCHECK_REMOTE_SSH_PORT (default sc-dind-test on
    12223); under pytest-xdist each worker gets its own.
    """
    from testbed.remote import RemoteHost, RemoteTestbed, remote_down, remote_up

    _ensure_engine(request)
    name, port = _remote_settings()
    host = RemoteHost(name, port, state_dir=tmp_path_factory.mktemp("remote") / name)
    bed = RemoteTestbed(host)
    with _project_lock(name, kind="remote"):
        saved = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = CANARY_PASSWORD
        try:
            started = time.monotonic()
            try:
                remote_up(host, bed)
            except TestbedError as exc:
                pytest.fail(f"remote test host did not come up: {exc}")
            record_timing(f"remote up ({name})", time.monotonic() - started)
            yield bed
        finally:
            if saved is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = saved
            if not os.environ.get("STACKCHECK_TESTBED_KEEP"):
                started = time.monotonic()
                remote_down(host, bed, volumes=True)
                record_timing(f"remote down ({name})", time.monotonic() - started)


@pytest.fixture
def remote_fault(remote_testbed: RemoteTestbed) -> Iterator[Callable[[str], None]]:
    """As `fault`, on the stack inside the remote test host."""
    yield from _faults(remote_testbed, "remote ")


@pytest.fixture
def record_testbed_timing() -> Callable[[str, float], None]:
    """record_testbed_timing(what, seconds): listed under "testbed timings" at the end."""
    return record_timing


@pytest.fixture
def fault(testbed: Testbed) -> Iterator[Callable[[str], None]]:
    """Call with a fault name to inject it; the stack is reset after the test, always."""
    yield from _faults(testbed, "")


def _faults(bed: Testbed, label: str) -> Iterator[Callable[[str], None]]:
    """The `fault` fixtures' body: inject on ``bed``, reset it after the test if any was."""
    injected: list[str] = []

    def inject(name: str) -> None:
        injected.append(name)  # before injecting: a half-done inject is reset too
        started = time.monotonic()
        bed.inject(name)
        record_timing(f"{label}inject {name}", time.monotonic() - started)

    yield inject
    if injected:
        started = time.monotonic()
        bed.reset()
        record_timing(f"{label}reset after {', '.join(injected)}", time.monotonic() - started)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("testbed timings")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:6.1f}s  {what}")
