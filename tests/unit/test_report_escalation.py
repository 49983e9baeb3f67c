"""The escalation clock, per stack: a failing run opens the incident, a full healthy run closes it.

Also what several runs sharing one reports directory must keep apart: each
stack's clock, note and metrics, whether the runs follow one another or overlap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import factbench
import pytest
from prometheus_client.parser import text_string_to_metric_families
from reportbench import (
    DB_FAILED,
    DB_STOPPED,
    TESTBED,
    TESTBED_ITEMS,
    TESTBED_SKIPPED,
    CheckRun,
    stack_toml,
)

from stackcheck.report.files import slug

pytest_plugins = ("pytester",)

CLOCK = "incident-testbed.json"
OTHER = {**TESTBED, "name": "other", "compose_project": "ot"}


def clock(checkrun: CheckRun) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((checkrun.reports / CLOCK).read_text())
    return data


def incident(checkrun: CheckRun, stack: str = "testbed") -> Any:
    return checkrun.summary(stack)["stacks"][0]["incident"]


def age(checkrun: CheckRun, minutes: float) -> None:
    """Pretend the incident was opened ``minutes`` ago."""
    path = checkrun.reports / CLOCK
    data = json.loads(path.read_text())
    opened = datetime.fromisoformat(data["opened_at"]) - timedelta(minutes=minutes)
    data["opened_at"] = opened.isoformat()
    path.write_text(json.dumps(data))


def escalation_line(result: pytest.RunResult) -> str:
    return next(
        line
        for line in result.stdout.lines
        if line.startswith(("Incident", "ESCALATE", "No open incident"))
    )


def snapshot(directory: Path, stack: str) -> dict[str, tuple[int, int, bytes]]:
    """Each file of one stack: inode and mtime (an atomic rewrite changes both), bytes."""
    found = {}
    prefixes = tuple(f"{kind}-{stack}" for kind in ("incident", "stackcheck", "summary"))
    for path in directory.iterdir():
        if path.name.startswith(prefixes):
            stat = path.stat()
            found[path.name] = (stat.st_ino, stat.st_mtime_ns, path.read_bytes())
    return found


def test_first_failing_run_opens_the_incident(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    first = checkrun.run()
    opened = clock(checkrun)["opened_at"]
    assert opened == checkrun.summary()["started_at"]
    assert escalation_line(first).startswith("Incident open for 0 min (first failing run ")
    assert "if still unresolved in 15 min, escalate: page the team lead" in escalation_line(first)

    second = checkrun.run()
    assert clock(checkrun)["opened_at"] == opened
    assert "2 runs" in escalation_line(second)
    assert incident(checkrun)["runs"] == 2
    assert incident(checkrun)["opened_at"] == opened


def test_past_fifteen_minutes_it_says_escalate(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 16)
    line = escalation_line(checkrun.run())
    assert line.startswith("ESCALATE: incident open for 16 min")
    assert "unresolved past 15 min: page the team lead, notify stakeholders in Slack" in line
    found = incident(checkrun)
    assert found["escalate"] is True and found["open_for_s"] >= 16 * 60


def test_before_fifteen_minutes_it_counts_down(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 13.5)
    line = escalation_line(checkrun.run())
    assert line.startswith("Incident open for 13 min")
    assert "if still unresolved in 2 min, escalate" in line
    assert incident(checkrun)["escalate"] is False


def test_a_full_healthy_run_closes_the_incident(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 20)
    checkrun.scenario({})
    result = checkrun.run()
    assert not (checkrun.reports / CLOCK).exists()
    assert escalation_line(result).startswith("Incident resolved after 20 min")
    assert incident(checkrun)["closed_at"] is not None
    (note,) = checkrun.reports.glob("incident-testbed-*.md")
    assert "- Status: resolved" in note.read_text()
    # The next failure is a new incident, with its clock started afresh.
    checkrun.scenario(DB_STOPPED)
    assert escalation_line(checkrun.run()).startswith("Incident open for 0 min")
    assert escalation_line(checkrun.run()).startswith("Incident open for 0 min")


def test_no_incident_without_a_failure(checkrun: CheckRun) -> None:
    result = checkrun.run()
    assert escalation_line(result) == "No open incident."
    assert not (checkrun.reports / CLOCK).exists()
    assert incident(checkrun) is None


def test_a_damaged_clock_starts_a_new_incident(checkrun: CheckRun) -> None:
    checkrun.reports.mkdir()
    (checkrun.reports / CLOCK).write_text("{not json")
    checkrun.scenario(DB_STOPPED)
    checkrun.run().assert_outcomes(
        failed=DB_FAILED,
        passed=TESTBED_ITEMS - TESTBED_SKIPPED - DB_FAILED,
        skipped=TESTBED_SKIPPED,
    )
    assert clock(checkrun)["opened_at"] == checkrun.summary()["started_at"]
    assert len(clock(checkrun)["runs"]) == 1


# -- Stacks sharing a reports directory ------------------------------------------


def test_a_healthy_stack_leaves_another_stack_s_incident_alone(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)  # stack testbed, its own run
    assert checkrun.run().ret == 1
    mine = snapshot(checkrun.reports, "testbed")
    assert {CLOCK, "stackcheck-testbed.prom", "summary-testbed.json"} <= set(mine)
    assert any(name.endswith(".md") for name in mine)

    checkrun.scenario({}, stacks=[OTHER])  # then stack other, healthy, its own run
    assert checkrun.run().ret == 0
    # testbed's clock, lock, note, metrics and summary: untouched.
    assert snapshot(checkrun.reports, "testbed") == mine
    names = {p.name for p in checkrun.reports.iterdir()}
    assert {"summary-other.json", "stackcheck-other.prom"} <= names
    assert "incident-other.json" not in names
    assert not list(checkrun.reports.glob("incident-other-*.md"))
    assert checkrun.summary("other")["status"] == "healthy"
    assert incident(checkrun, "other") is None

    # testbed's incident goes on: its next run is its second.
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    assert len(clock(checkrun)["runs"]) == 2


def test_a_hostile_stack_name_stays_a_file_name_inside_the_reports_dir(
    checkrun: CheckRun,
) -> None:
    name = "../../etc/x y"
    checkrun.scenario(DB_STOPPED, stacks=[{**TESTBED, "name": name, "file": "hostile.toml"}])
    outside = [checkrun.path.parent / "etc", checkrun.path / "etc"]
    assert checkrun.run().ret == 1
    safe = slug(name)
    assert "/" not in safe and "\\" not in safe and " " not in safe and ".." not in safe
    names = {p.name for p in checkrun.reports.iterdir()}
    assert {f"summary-{safe}.json", f"stackcheck-{safe}.prom", f"incident-{safe}.json"} <= names
    assert len(list(checkrun.reports.glob(f"incident-{safe}-*.md"))) == 1
    assert all(p.is_file() for p in checkrun.reports.iterdir())  # no directory was made
    assert not any(path.exists() for path in outside)
    # The name itself is data, kept as it was.
    summary = json.loads((checkrun.reports / f"summary-{safe}.json").read_text())
    assert summary["stacks"][0]["name"] == name
    assert slug("../../etc/x_y") != safe  # names that differ only in unsafe characters differ


# -- Runs that overlap -------------------------------------------------------------


def _run(directory: Path, kind: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "checks", "-p", "fabricated", "-p", "no:cacheprovider"]
    argv += ["--stack", f"{kind}/testbed.toml", "--reports-dir=reports"]
    # The timeout only keeps a deadlock from hanging the suite; no timing is asserted.
    return subprocess.run(
        argv, cwd=directory, capture_output=True, text=True, timeout=300, check=False
    )


def test_concurrent_runs_leave_every_report_whole(checkrun: CheckRun) -> None:
    # One stack, two scenarios: the same clock is moved by runs that disagree.
    # (The checkrun fixture has set PYTHONPATH for subprocesses.)
    for kind, changes in (("healthy", {}), ("unhealthy", DB_STOPPED)):
        (checkrun.path / kind).mkdir()
        (checkrun.path / kind / "testbed.toml").write_text(stack_toml(TESTBED))
        factbench.write_scenario(checkrun.path / kind, {"testbed": dict(changes)})
    kinds = ["healthy", "unhealthy"] * 5
    with ThreadPoolExecutor(max_workers=len(kinds)) as pool:
        done = list(pool.map(lambda kind: _run(checkrun.path, kind), kinds))

    for kind, run in zip(kinds, done, strict=True):
        output = run.stdout + run.stderr
        assert run.returncode == (0 if kind == "healthy" else 1), output
        assert "Traceback" not in output and "INTERNALERROR" not in output
        assert "Remediation" in run.stdout
        assert "reports: cannot" not in output and "stayed locked" not in output

    files = list(checkrun.reports.iterdir())
    assert {"summary-testbed.json", "stackcheck-testbed.prom"} <= {p.name for p in files}
    for path in files:
        assert not path.name.endswith(".tmp"), path.name
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            assert isinstance(data, dict) and data, path.name
        elif path.suffix == ".prom":
            families = {f.name for f in text_string_to_metric_families(path.read_text())}
            assert "stackcheck_stack_status" in families, path.name
        elif path.suffix == ".md":
            assert path.read_text().startswith("# Incident: "), path.name
        else:
            assert path.name in (f"{CLOCK}.lock", ".stackcheck-key"), path.name
    if (checkrun.reports / CLOCK).exists():  # the last run to move it failed
        runs = clock(checkrun)["runs"]
        assert runs and runs[0]["status"] == "unhealthy"  # only a failure opens one
