"""A fleet of 8 testbed stacks, one broken, checked serially and with `-n auto`
(issue 11, part 4): the same verdicts and reports, and each stack gathered
exactly once (counted at the gathering hook, in whichever process made it).

The session's testbed is one of the 8; the other 7 are small testbed copies
brought up for this module (projects stackcheck-fleet-01.., loopback ports
18300+i / 15700+i; STACKCHECK_FLEET_PREFIX / _BACKEND_BASE / _DB_BASE override).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkrun import CheckRun, run_checks

from testbed import Testbed
from testbed import fleet as testbed_fleet

COPIES = 7
BROKEN = 3  # the copy whose database is stopped
PROBE_S = 30

# Loaded with -p in the runs below: writes "PID what STACK" per gathering and
# per container listing (one engine call per gathering of a stack).
COUNTING = """
import os

import pytest

from stackcheck.probes import docker_probe


def _log(what, stack):
    with open(os.environ["FLEET_COUNT_LOG"], "a") as log:
        log.write(f"{os.getpid()} {what} {stack.name}\\n")


_find = docker_probe.find_containers


def _counted(client, stack):
    _log("engine-list", stack)
    return _find(client, stack)


docker_probe.find_containers = _counted


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_stackcheck_gather(stack, needs):
    _log("gather", stack)
    return (yield)
"""


def _settings() -> tuple[str, int, int]:
    prefix = os.environ.get("STACKCHECK_FLEET_PREFIX", "stackcheck-fleet-")
    backend = int(os.environ.get("STACKCHECK_FLEET_BACKEND_BASE", "18300"))
    db = int(os.environ.get("STACKCHECK_FLEET_DB_BASE", "15700"))
    return prefix, backend, db


@pytest.fixture(scope="module")
def fleet_dir(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory of 8 stack files: the session's testbed and 7 copies, one broken."""
    prefix, backend, db = _settings()
    copies = testbed_fleet.beds(COPIES, prefix, backend, db)
    directory = tmp_path_factory.mktemp("fleet")
    try:
        testbed_fleet.up(copies, directory)
        testbed.write_stack_file(directory / f"{testbed.project}.toml")
        for path in directory.glob("*.toml"):
            # Same verdicts twice, not speed, is the point: a slow engine on a busy
            # machine must not turn a check blind in one run and not the other.
            path.write_text(path.read_text() + f"\n[timeouts]\nprobe_s = {PROBE_S}\n")
        copies[BROKEN - 1].inject("db-stopped")
        yield directory
    finally:
        if not os.environ.get("STACKCHECK_TESTBED_KEEP"):
            testbed_fleet.down(copies)


def _counts(log: Path) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {
        "gather": Counter(),
        "engine-list": Counter(),
        "pid": Counter(),
    }
    for line in log.read_text().splitlines():
        pid, what, stack = line.split(" ", 2)
        found[what][stack] += 1
        if what == "gather":
            found["pid"][pid] += 1
    return found


def _verdicts(run: CheckRun, stacks: list[str]) -> dict[str, Any]:
    found = {}
    for name in stacks:
        summary = json.loads((run.reports / f"summary-{name}.json").read_text())
        found[name] = (
            summary["status"],
            summary["root_causes"],
            summary["blind_spots"],
            sorted(
                (c["key"], c["outcome"], c["role"], c["caused_by"], tuple(c["remediation"]))
                for c in summary["checks"]
            ),
        )
    return found


def test_a_fleet_serial_and_parallel_same_verdicts_each_stack_gathered_once(
    fleet_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "counting.py").write_text(COUNTING)
    stacks = sorted(p.stem for p in fleet_dir.glob("*.toml"))
    prefix = _settings()[0]
    broken = f"{prefix}{BROKEN:02d}"
    assert len(stacks) == 8 and broken in stacks
    python_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))

    def check(mode: str, attempt: int, *extra: str) -> tuple[CheckRun, dict[str, Counter[str]]]:
        log = tmp_path / f"{mode}-{attempt}.log"
        env = {
            "FLEET_COUNT_LOG": str(log),
            "PYTHONPATH": python_path,
            "PYTEST_XDIST_AUTO_NUM_WORKERS": "2",
        }
        run = run_checks(
            "--stack",
            str(fleet_dir),
            "-p",
            "counting",
            *extra,
            tmp_path=tmp_path / f"{mode}-{attempt}",
            env=env,
            timeout=180,
        )
        assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
        return run, _counts(log)

    # Two runs are two moments: on a loaded machine a real stack may change in
    # between (a db healthcheck timing out), so a difference gets one more pair.
    for attempt in range(2):
        runs = {
            "serial": check("serial", attempt),
            "parallel": check("parallel", attempt, "-n", "auto"),
        }
        if _verdicts(runs["serial"][0], stacks) == _verdicts(runs["parallel"][0], stacks):
            break

    serial, serial_counts = runs["serial"]
    parallel, parallel_counts = runs["parallel"]
    assert "created: 2/2 workers" in parallel.stdout
    # The same verdicts, roles, causes and fixes per stack, and the same JUnit outcomes.
    assert _verdicts(serial, stacks) == _verdicts(parallel, stacks)
    assert serial.outcomes == parallel.outcomes and len(serial.outcomes) == 8 * 22
    statuses = {name: v[0] for name, v in _verdicts(parallel, stacks).items()}
    assert statuses == {name: "unhealthy" if name == broken else "healthy" for name in stacks}
    assert _verdicts(parallel, stacks)[broken][1] == [f"{broken}/db:container_running"]
    assert serial.stdout.count("ROOT CAUSE ") == parallel.stdout.count("ROOT CAUSE ") == 1

    # Each stack gathered once, and the engine asked for its containers once.
    everyone = Counter(stacks)
    for counts in (serial_counts, parallel_counts):
        assert counts["gather"] == everyone
        # Listed at collection by each process that collects (replicas' test ids),
        # and never again by the gathering: at most once per process.
        assert set(counts["engine-list"]) == set(stacks)
    assert len(serial_counts["pid"]) == 1
    assert len(parallel_counts["pid"]) == 2  # both workers gathered (their own stacks)
