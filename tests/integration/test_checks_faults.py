"""The checks against the real testbed: healthy means all green, each fault exactly its checks.

Each row is what an on-call engineer should see for one runbook failure mode:
the checks that must fail. Every other check must pass (or be skipped for a
stated reason, like a container without a HEALTHCHECK), so a fault that turns
an unrelated check red is a false alarm, and one that leaves a listed check
green is a missed fault. No check may be "could not check" (a pytest ERROR)
under any fault: the testbed's engine answers and its images have every tool,
so a blind spot here means the checker lost its way in, not that the stack broke.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed import Testbed
from tests.checkrun import ROOT, check_definitions, check_ids, run_checks

# A hang detector, not a timing: timeouts.probe_s plus a margin wide enough for a
# loaded CI machine. The documented bound (probe_s + about 1 s) is measured in bench/.
PROBE_S = 5.0  # the default timeouts.probe_s
BOUND_S = PROBE_S + 5.0

NET = {"test_net_resolve[backend->db]", "test_net_ping[backend->db]", "test_net_port[backend->db]"}
BACKEND_STATS = {"test_memory_headroom[backend]", "test_cpu_headroom[backend]"}
DB_STATS = {"test_memory_headroom[db]", "test_cpu_headroom[db]"}
HTTP = {"test_http_health[backend]"}

EXPECTED_FAILURES: dict[str, set[str]] = {
    "backend-stopped": {"test_container_running[backend]", *BACKEND_STATS, *NET, *HTTP},
    "backend-crashloop": {
        "test_container_running[backend]",
        "test_container_stable[backend]",
        "test_logs_clean[backend]",
        *BACKEND_STATS,
        *NET,
        *HTTP,
    },
    "backend-oom-killed": {"test_container_stable[backend]"},
    "backend-oom-crashloop": {
        "test_container_running[backend]",
        "test_container_stable[backend]",
        *BACKEND_STATS,
        *NET,
        *HTTP,
    },
    "backend-memory-near-limit": {"test_memory_headroom[backend]"},
    "backend-log-errors": {"test_logs_clean[backend]"},
    "health-500": HTTP,
    "health-hang": HTTP,
    "health-trickle": HTTP,
    "db-stopped": {
        "test_container_running[db]",
        "test_container_healthy[db]",
        "test_pg_ready[db]",
        "test_pg_connections[db]",
        # A stopped container cannot be looked into: its data filesystem neither.
        "test_pg_data_disk[db]",
        *DB_STATS,
        *NET,
        *HTTP,
    },
    "db-hung": {
        "test_container_healthy[db]",
        "test_pg_ready[db]",
        "test_pg_connections[db]",
        *HTTP,
    },
    "db-connections-near-limit": {"test_pg_connections[db]"},
    "db-connections-exhausted": {"test_pg_connections[db]", "test_logs_clean[db]", *HTTP},
    "db-disk-full": {"test_pg_data_disk[db]"},
    "network-partition": {"test_net_ping[backend->db]", "test_net_port[backend->db]", *HTTP},
    "dns-broken": {*NET, *HTTP},
}


def _wait(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"fault did not settle: {what}"
        time.sleep(0.2)


def _settle(testbed, name: str) -> None:
    """Wait until what the fault shows no longer depends on when we look.

    A crash loop is 'running' for a fraction of a second between 'restarting'
    spells that double each time (docker's back-off); after 7 restarts a spell
    lasts 12.8 s, far longer than a run. Docker's own health check needs its
    retries (3 x 2 s) to call a frozen database unhealthy.
    """
    if name in ("backend-crashloop", "backend-oom-crashloop"):

        def long_backoff() -> bool:
            attrs = testbed.container("backend").attrs
            return attrs["RestartCount"] >= 7 and attrs["State"]["Status"] == "restarting"

        _wait("backend restarting after 7 restarts", long_backoff, timeout=90)
    elif name == "db-hung":

        def unhealthy() -> bool:
            return testbed.container("db").attrs["State"]["Health"]["Status"] == "unhealthy"

        _wait("db health check unhealthy", unhealthy, timeout=60)


# Skipped by design, with a reason, not passed: the testbed's backend image has
# no HEALTHCHECK. Nothing else may be skipped: a tool missing from a testbed
# image would have to be a declared gap in the stack file (none is needed).
ALWAYS_SKIPPED = {"test_container_healthy[backend]"}
# 16 checks: 6 on each service, pg_ready/pg_connections/pg_data_disk on db,
# http_health on backend, 3 on the backend->db edge, 3 on the host (which no
# testbed fault touches: they pass in every row). Written out so that the
# derivation from the definitions cannot drift together with the collector.
TESTBED_ITEMS = 22


def test_every_fault_has_a_row(testbed) -> None:
    from testbed import FAULTS

    assert set(EXPECTED_FAILURES) == set(FAULTS)


def test_every_listed_check_exists(tmp_path: Path) -> None:
    """A row naming a check the testbed does not have could never match a run."""
    ids = check_ids(Testbed().write_stack_file(tmp_path / "stack.toml"))
    assert len({c.name for c in check_definitions()}) == 16
    assert len(ids) == TESTBED_ITEMS, sorted(ids)
    for name, expected in EXPECTED_FAILURES.items():
        assert expected <= ids, (name, expected - ids)
    assert ids >= ALWAYS_SKIPPED


def test_checked_in_stack_file_is_the_one_the_tests_write(tmp_path: Path) -> None:
    """testbed/stack.toml (what a person points the checks at) says what the tests use.

    Same services, URLs, ports and declared gaps as the file Testbed writes for
    the default project, so a gap declared for one is declared for the other.
    """
    checked_in = tomllib.loads((ROOT / "testbed" / "stack.toml").read_text())
    written = tomllib.loads(Testbed().stack_file_text())
    assert checked_in == written


def test_healthy_stack_twenty_runs_no_false_alarm(testbed, tmp_path: Path) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    expected = check_ids(stack_file)
    for attempt in range(20):
        run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
        where = f"run {attempt + 1}: {run.failed() | run.errors()}\n{run.stdout[-3000:]}"
        assert run.returncode == 0, where
        assert set(run.outcomes) == expected, where
        assert run.skipped() == ALWAYS_SKIPPED, where
        assert run.passed() == expected - ALWAYS_SKIPPED, where
        summary = run.summary(testbed.project)
        assert summary["status"] == "healthy", where
        assert summary["root_causes"] == [] and summary["blind_spots"] == [], where


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_fault_fails_exactly_its_checks(testbed, fault, name: str, tmp_path: Path) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    fault(name)
    _settle(testbed, name)
    run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
    messages = "\n\n".join(f"{k}: {v}" for k, v in run.messages.items())
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failed() == EXPECTED_FAILURES[name], messages
    assert run.errors() == set(), messages
    unexpected_skips = run.skipped() - ALWAYS_SKIPPED
    assert not unexpected_skips, {k: run.messages[k] for k in unexpected_skips}
    assert run.wall_s < BOUND_S, f"run took {run.wall_s:.1f} s, bound {BOUND_S} s"


def test_all_probes_hanging_ends_within_bound(testbed, fault, tmp_path: Path) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("health-hang")
    fault("db-hung")
    _settle(testbed, "db-hung")
    run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
    assert run.returncode == 1
    assert {"test_pg_ready[db]", "test_http_health[backend]"} <= run.failed()
    assert "deadline" in run.messages["test_http_health[backend]"]
    assert run.wall_s < BOUND_S, f"run took {run.wall_s:.1f} s, bound {BOUND_S} s"
    # The README's bound, probe_s + 1 s, as the run itself accounts for it: no
    # check's probes ran past the deadline, and the session (collection, the
    # gathering, every verdict, every report) stayed within probe_s + 1 s. The
    # interpreter's start-up, part of the README's wall-time figure, is measured
    # by bench/ only.
    summary = run.summary(testbed.project)
    assert max(c["duration_s"] for c in summary["checks"]) <= PROBE_S + 0.05
    assert summary["duration_s"] < PROBE_S + 1.0, summary["duration_s"]


def test_xdist_gives_the_same_verdicts(testbed, fault, tmp_path: Path) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("db-stopped")
    run = run_checks("--stack", str(stack_file), "-n", "2", tmp_path=tmp_path)
    assert run.returncode == 1
    assert run.failed() == EXPECTED_FAILURES["db-stopped"]
    assert run.errors() == set()


def test_non_utf8_log_bytes_are_evidence_not_a_crash(testbed, tmp_path: Path) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    try:
        testbed.exec(
            "backend", ["sh", "-c", r"printf 'ERROR bad bytes \377\376\300 here\n' >/proc/1/fd/2"]
        )
        run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
    finally:
        testbed.reset()
    assert run.failed() == {"test_logs_clean[backend]"}
    assert run.errors() == set()
    assert "ERROR bad bytes \ufffd\ufffd\ufffd here" in run.messages["test_logs_clean[backend]"]
    assert "Traceback" not in run.stdout + run.stderr


def test_near_limit_fails_only_slot_arithmetic_that_subtracts_reserved_slots(
    testbed, fault, tmp_path: Path
) -> None:
    # The fault holds 22 connections: over 80 % of the 27 usable slots, under 80 %
    # of max_connections' 30. A check that forgot the reserved slots would pass.
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("db-connections-near-limit")
    run = run_checks("--stack", str(stack_file), tmp_path=tmp_path)
    assert "test_pg_connections[db]" in run.failed()
    evidence = next(
        c["evidence"]
        for c in run.summary(testbed.project)["checks"]
        if c["key"] == "db:pg_connections"
    )
    found = re.search(r"(\d+) of (\d+) usable .* max_connections (\d+), (\d+) reserved", evidence)
    assert found, evidence
    in_use, usable, max_connections, reserved = map(int, found.groups())
    assert usable == max_connections - reserved
    assert 100 * in_use / usable >= 80 > 100 * in_use / max_connections, evidence
