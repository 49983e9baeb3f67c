"""Under `pytest -n 2` the controller alone reports, with what the workers found.

The controller collects nothing itself: it must learn from the workers how many
checks there were, so partial runs are still told from full ones.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from junit_schema import validate_junit
from reportbench import (
    DB_CONSEQUENCES,
    DB_FAILED,
    DB_STOPPED,
    TESTBED_ITEMS,
    TESTBED_SKIPPED,
    CheckRun,
)

pytest_plugins = ("pytester",)

ROOT = "db:container_running"


def verdicts(summary: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        c["key"]: (c["outcome"], c["role"], c["caused_by"], c["remediation"])
        for c in summary["checks"]
    }


def test_two_workers_report_what_one_process_does(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run("--reports-dir=serial")
    serial = json.loads((checkrun.path / "serial" / "summary-testbed.json").read_text())

    result = checkrun.run("-n", "2", "--junitxml=junit.xml", subprocess=True)
    result.assert_outcomes(
        failed=DB_FAILED,
        passed=TESTBED_ITEMS - TESTBED_SKIPPED - DB_FAILED,
        skipped=TESTBED_SKIPPED,
    )
    assert result.ret == 1
    assert "created: 2/2 workers" in result.stdout.str()
    summary = checkrun.summary()
    assert verdicts(summary) == verdicts(serial)
    assert summary["root_causes"] == [ROOT] and summary["partial"] is False
    assert result.stdout.str().count("ROOT CAUSE ") == 1

    # Written once, by the controller: one run on the clock, one note.
    names = {p.name for p in checkrun.reports.iterdir()}
    notes = {n for n in names if n.startswith("incident-testbed-") and n.endswith(".md")}
    assert len(notes) == 1
    assert names - notes == {
        "incident-testbed.json",
        "incident-testbed.json.lock",
        "stackcheck-testbed.prom",
        "summary-testbed.json",
        ".stackcheck-key",  # the environment digests' key, made by the first worker
    }
    assert summary["stacks"][0]["incident"]["runs"] == 1
    clock = json.loads((checkrun.reports / "incident-testbed.json").read_text())
    assert len(clock["runs"]) == 1

    junit = checkrun.path / "junit.xml"
    assert "junit-ci.xsd" in validate_junit(junit)
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    assert suite.get("name") == "testbed"
    messages = [f.get("message", "") for f in suite.iter("failure")]
    assert len(messages) == DB_FAILED
    assert sum(m.startswith(f"{ROOT}: Start a stopped container") for m in messages) == 1
    consequences = [m for m in messages if m.startswith(f"consequence of {ROOT} — fix that first")]
    assert len(consequences) == len(DB_CONSEQUENCES)


def test_a_full_run_under_xdist_closes_the_incident(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    assert checkrun.run().ret == 1
    checkrun.scenario({})
    result = checkrun.run("-n", "2", subprocess=True)
    assert result.ret == 0
    summary = checkrun.summary()
    assert summary["status"] == "healthy" and summary["partial"] is False
    assert not (checkrun.reports / "incident-testbed.json").exists()


@pytest.mark.parametrize(
    "paths_args",
    [
        (("checks",), ("-k", "http")),
        (("checks/test_http.py::test_http_health",), ()),
    ],
    ids=["keyword", "node-id"],
)
def test_partial_runs_are_told_under_xdist(
    checkrun: CheckRun, paths_args: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    paths, args = paths_args
    result = checkrun.run("-n", "2", *args, subprocess=True, paths=paths)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    summary = checkrun.summary()
    assert summary["partial"] is True and summary["status"] == "unknown"
    # A partial run writes no metrics: none existed, none may claim health now.
    assert not (checkrun.reports / "stackcheck-testbed.prom").exists()
