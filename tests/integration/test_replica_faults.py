"""Every replica checked, against the real testbed: the backend scaled to 3, one replica broken.

Each fault is injected once for the module's tests (scaling takes a while) and
undone by the testbed's reset, which brings the stack back to one backend on
its fixed port.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import Testbed
from testbed.stack import REPLICAS, wait_for
from tests.checkrun import CheckRun, check_ids, run_checks

NUMBERS = list(range(1, REPLICAS + 1))
# The testbed's backend image has no HEALTHCHECK: container_healthy is skipped on each replica.
ALWAYS_SKIPPED = {f"test_container_healthy[backend#{n}]" for n in NUMBERS}


def _broken(testbed: Testbed, tmp: Path, fault: str) -> Iterator[tuple[int, CheckRun]]:
    """Inject ``fault``, run the checks once; yield the broken replica and the run."""
    try:
        testbed.inject(fault)
        # The broken one, as the engine says: stopped, or restarted after its OOM kill.
        touched = [
            n
            for n, c in testbed.replicas("backend").items()
            if c.status != "running" or c.attrs["RestartCount"] > 0
        ]
        assert len(touched) == 1, touched
        number = touched[0]
        stack_file = testbed.write_stack_file(tmp / "stack.toml")
        run = run_checks("--stack", str(stack_file), tmp_path=tmp)
        yield number, run
    finally:
        testbed.reset()
        # Back to the normal stack: one backend, on its fixed port, serving.
        assert list(testbed.replicas("backend")) == [1]
        wait_for(lambda: testbed.health() == "200", 60, "backend /health 200 after the reset")


@pytest.fixture(scope="module")
def replica_stopped(
    testbed: Testbed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, CheckRun]]:
    yield from _broken(testbed, tmp_path_factory.mktemp("stopped"), "backend-replica-stopped")


@pytest.fixture(scope="module")
def replica_oom(
    testbed: Testbed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, CheckRun]]:
    yield from _broken(testbed, tmp_path_factory.mktemp("oom"), "backend-replica-oom")


def _expected_ids(testbed: Testbed, tmp: Path) -> set[str]:
    return check_ids(testbed.write_stack_file(tmp / "ids.toml"), replicas={"backend": NUMBERS})


def test_one_replica_stopped_fails_that_replica_only(
    testbed: Testbed, replica_stopped: tuple[int, CheckRun], tmp_path: Path
) -> None:
    number, run = replica_stopped
    messages = "\n\n".join(f"{k}: {v}" for k, v in run.messages.items())
    expected = _expected_ids(testbed, tmp_path)
    assert set(run.outcomes) == expected, run.stdout[-3000:]
    unit = f"backend#{number}"
    assert run.failed() == {
        f"test_container_running[{unit}]",
        f"test_memory_headroom[{unit}]",
        f"test_cpu_headroom[{unit}]",
        f"test_net_resolve[{unit}->db]",
        f"test_net_ping[{unit}->db]",
        f"test_net_port[{unit}->db]",
    }, messages
    assert run.errors() == set(), messages
    assert run.skipped() == ALWAYS_SKIPPED, messages
    assert run.returncode == 1
    # The service still serves through the others: its API check passes.
    assert run.outcomes["test_http_health[backend]"] == "passed"


def test_one_replica_stopped_is_reported_as_a_partial_outage(
    testbed: Testbed, replica_stopped: tuple[int, CheckRun]
) -> None:
    number, run = replica_stopped
    summary = run.summary(testbed.project)
    unit = f"backend#{number}"
    assert summary["root_causes"] == [f"{unit}:container_running"]
    checks = {c["key"]: c for c in summary["checks"]}
    others = [n for n in NUMBERS if n != number]
    assert checks[f"{unit}:container_running"]["replicas"] == {
        "count": REPLICAS,
        "failing": [number],
        "running": others,
        "outage": "partial",
    }
    assert checks[f"{unit}->db:net_port"]["caused_by"] == f"{unit}:container_running"
    section = run.remediation()
    serving = ", ".join(f"#{n}" for n in others)
    assert (
        f"replicas: partial outage: fails on 1 of {REPLICAS} replicas of backend (#{number}); "
        f"{REPLICAS - 1} of {REPLICAS} serving (running: {serving})" in section
    )
    # Its fix keeps the scale: `up -d backend` alone would remove the other replicas.
    assert f"up -d --scale backend={REPLICAS} backend" in section
    assert re.search(r"up -d backend\b", section) is None


def test_one_replica_oom_killed_fails_its_stability_only(
    testbed: Testbed, replica_oom: tuple[int, CheckRun], tmp_path: Path
) -> None:
    number, run = replica_oom
    messages = "\n\n".join(f"{k}: {v}" for k, v in run.messages.items())
    assert set(run.outcomes) == _expected_ids(testbed, tmp_path), run.stdout[-3000:]
    assert run.failed() == {f"test_container_stable[backend#{number}]"}, messages
    assert run.errors() == set(), messages
    assert "OOM-killed" in run.messages[f"test_container_stable[backend#{number}]"]
    summary = run.summary(testbed.project)
    assert summary["root_causes"] == [f"backend#{number}:container_stable"]
    assert (
        f"replicas: partial outage: fails on 1 of {REPLICAS} replicas of backend (#{number}); "
        f"{REPLICAS} of {REPLICAS} serving" in run.remediation()
    )
