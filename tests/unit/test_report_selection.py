"""Only a run of all the checks speaks for the whole stack.

A run that selected some checks (node ids, files, -k, -m, --deselect, --lf) or
stopped early (-x) is partial: whatever it finds, it must not close the open
incident, and it must not rewrite the metrics of the last complete run, since
what it did not run is not known to be healthy. Checks that do not apply to a
stack (no database, no edge) are not a selection: leaving them out keeps a run
full.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reportbench import DB_FAILED, DB_STOPPED, TESTBED_ITEMS, TESTBED_SKIPPED, CheckRun

pytest_plugins = ("pytester",)

CLOCK = "incident-testbed.json"
PROM = "stackcheck-testbed.prom"
ENGINE_DOWN = "Docker engine unreachable at unix:///var/run/docker.sock: no such file"
FULL = ("checks",)

# (paths collected, extra arguments, checks that then run) for each way to select.
SELECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "node-id": (("checks/test_http.py::test_http_health",), (), 1),
    "file": (("checks/test_http.py",), (), 1),
    "keyword": (FULL, ("-k", "http"), 1),
    # container_running x2, container_healthy x2 (skipped), pg_ready, http_health
    "marker": (FULL, ("-m", "health_check_failing"), 6),
    "deselect": (FULL, ("--deselect", "checks/test_logs.py"), TESTBED_ITEMS - 2),
}


def file_state(path: Path) -> tuple[int, int, bytes]:
    """Inode and mtime (an atomic rewrite changes both) and the bytes."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, path.read_bytes()


def open_incident(checkrun: CheckRun, cache: bool = False) -> tuple[int, int, bytes]:
    """A first, complete, failing run: the incident is open; the metrics' state."""
    checkrun.scenario(DB_STOPPED)
    assert checkrun.run(cache=cache).ret == 1
    assert (checkrun.reports / CLOCK).is_file()
    return file_state(checkrun.reports / PROM)


def runs_on_the_clock(checkrun: CheckRun) -> int:
    return len(json.loads((checkrun.reports / CLOCK).read_text())["runs"])


def note(checkrun: CheckRun) -> str:
    (found,) = checkrun.reports.glob("incident-testbed-*.md")
    return found.read_text()


def ran(result: pytest.RunResult) -> int:
    outcomes = result.parseoutcomes()
    return sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped", "errors", "error"))


def assert_left_open(checkrun: CheckRun, metrics: tuple[int, int, bytes]) -> dict[str, Any]:
    """The incident is still open, and the metrics are those of the first run."""
    assert (checkrun.reports / CLOCK).is_file()
    assert runs_on_the_clock(checkrun) == 2  # the partial run is on the record
    assert "- Status: open" in note(checkrun)
    assert file_state(checkrun.reports / PROM) == metrics
    summary = checkrun.summary()
    assert summary["partial"] is True
    assert summary["stacks"][0]["incident"]["closed_at"] is None
    return summary


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
def test_a_passing_selection_does_not_close_the_incident(
    checkrun: CheckRun, selection: str
) -> None:
    metrics = open_incident(checkrun)
    paths, args, count = SELECTIONS[selection]
    checkrun.scenario({})
    result = checkrun.run(*args, paths=paths)
    assert ran(result) == count < TESTBED_ITEMS  # it did select
    assert result.ret == 0  # nothing failed
    summary = assert_left_open(checkrun, metrics)
    assert summary["status"] == "unknown"
    assert any("only a run of all the checks" in line for line in result.outlines)


@pytest.mark.parametrize(
    ("first", "status"),
    [
        ({"container:db": {"state": "exited", "exit_code": 1}}, "unhealthy"),
        ({"container:db": {"blind": ENGINE_DOWN}}, "unknown"),
    ],
    ids=["failure", "blind"],
)
def test_a_run_stopped_by_x_is_partial(
    checkrun: CheckRun, first: dict[str, Any], status: str
) -> None:
    # db:container_running is the first check collected; it alone goes wrong here.
    metrics = open_incident(checkrun)
    checkrun.scenario(first)
    result = checkrun.run("-x")
    assert ran(result) == 1
    assert "stopping after 1 failures" in result.stdout.str()
    summary = assert_left_open(checkrun, metrics)
    assert summary["status"] == status
    assert [c["key"] for c in summary["checks"]] == ["db:container_running"]


def test_last_failed_is_partial(checkrun: CheckRun) -> None:
    metrics = open_incident(checkrun, cache=True)  # the cache records the failures
    checkrun.scenario({})
    result = checkrun.run("--lf", cache=True)
    assert ran(result) == DB_FAILED  # those that failed, now passing
    assert result.ret == 0
    summary = assert_left_open(checkrun, metrics)
    assert summary["status"] == "unknown"


def test_a_full_healthy_run_closes_the_incident(checkrun: CheckRun) -> None:
    metrics = open_incident(checkrun)
    checkrun.scenario({})
    result = checkrun.run()
    assert result.ret == 0
    assert not (checkrun.reports / CLOCK).exists()
    assert "- Status: resolved" in note(checkrun)
    assert file_state(checkrun.reports / PROM) != metrics
    summary = checkrun.summary()
    assert summary["status"] == "healthy" and summary["partial"] is False
    assert summary["stacks"][0]["incident"]["closed_at"] is not None


def test_a_full_run_with_a_blind_spot_does_not_close_it(checkrun: CheckRun) -> None:
    open_incident(checkrun)
    checkrun.scenario({"stats:backend": {"blind": ENGINE_DOWN}})
    result = checkrun.run()
    assert result.ret == 6
    assert (checkrun.reports / CLOCK).is_file()
    assert "- Status: open" in note(checkrun)
    summary = checkrun.summary()
    assert summary["status"] == "unknown" and summary["partial"] is False
    assert any("could not check everything" in line for line in result.outlines)
    # A full run does rewrite the metrics: they say unknown now.
    prom = (checkrun.reports / PROM).read_text()
    assert 'stackcheck_stack_status{stack="testbed",status="unknown"} 1.0' in prom


# -- Checks that do not apply ------------------------------------------------------

WEB = {
    "name": "testbed",  # same clock file names as above
    "compose_project": "tb",
    "services": {"web": {"health_url": "http://127.0.0.1:18000/health", "port": 8000}},
}


def test_checks_that_do_not_apply_are_deselected_and_the_run_stays_full(
    checkrun: CheckRun,
) -> None:
    # No postgres_dsn and no depends_on: no pg_* check, no net_* check applies.
    checkrun.scenario({"container:web": {"state": "exited", "exit_code": 1}}, stacks=[WEB])
    first = checkrun.run("-rA", "--junitxml=junit.xml")
    assert first.ret == 1
    assert (checkrun.reports / PROM).is_file()
    for text in (first.stdout.str(), (checkrun.path / "junit.xml").read_text()):
        assert "NOTSET" not in text and "empty parameter set" not in text
        assert "not-applicable" not in text
        for name in ("pg_ready", "pg_connections", "pg_data_disk", "net_resolve", "net_port"):
            assert name not in text
    assert "6 deselected" in first.stdout.str()
    assert checkrun.summary()["partial"] is False

    checkrun.scenario({}, stacks=[WEB])
    healthy = checkrun.run()
    assert healthy.ret == 0
    summary = checkrun.summary()
    assert summary["status"] == "healthy" and summary["partial"] is False
    assert not (checkrun.reports / CLOCK).exists()
    assert "- Status: resolved" in note(checkrun)


def test_the_bench_s_healthy_run_is_full(checkrun: CheckRun) -> None:
    # The reference the selections above are partial against.
    result = checkrun.run()
    assert ran(result) == TESTBED_ITEMS
    result.assert_outcomes(passed=TESTBED_ITEMS - TESTBED_SKIPPED, skipped=TESTBED_SKIPPED)
    assert checkrun.summary()["partial"] is False
