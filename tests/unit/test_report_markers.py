"""Alert markers: `pytest checks/ -m ALERT` runs the checks that alert calls for."""

from __future__ import annotations

import re

import pytest
from definitions import definitions
from reportbench import TESTBED_ITEMS, CheckRun

from stackcheck.config import load_stack
from stackcheck.runbook import ALERTS
from stackcheck.where import refs

pytest_plugins = ("pytester",)

CHECKS = definitions()
NODE = re.compile(r"^checks/test_\w+\.py::test_(\w+)\[[^\]]+\]$")


def selected_checks(checkrun: CheckRun, *args: str) -> set[str]:
    result = checkrun.run("--collect-only", "-q", "--strict-markers", *args)
    assert result.ret == 0, result.stdout.str()
    found = [NODE.match(line) for line in result.stdout.lines]
    return {m.group(1) for m in found if m}


def test_without_a_marker_every_check_is_collected(checkrun: CheckRun) -> None:
    # The baseline the selections below are compared with.
    assert selected_checks(checkrun) == set(CHECKS)


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_each_alert_selects_exactly_the_checks_that_name_it(checkrun: CheckRun, alert: str) -> None:
    expected = {name for name, check in CHECKS.items() if alert in check.alerts}
    assert expected, f"no check answers {alert}"
    assert selected_checks(checkrun, "-m", alert) == expected


def test_database_connection_failed_calls_for_the_database_itself(checkrun: CheckRun) -> None:
    # Named, not derived: dropping the alert from a check's definition must fail here.
    selected = selected_checks(checkrun, "-m", "database_connection_failed")
    assert {"pg_ready", "pg_connections", "container_running", "net_port"} <= selected


def test_the_runbook_s_own_alert_runs_every_check(checkrun: CheckRun) -> None:
    assert selected_checks(checkrun, "-m", "api_service_down") == set(CHECKS)


def test_markers_are_registered_with_their_alert(checkrun: CheckRun) -> None:
    result = checkrun.run("--markers")
    for marker, description in ALERTS.items():
        alert = description.split(":")[0]
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}: {alert}: *"])


def test_a_selected_run_reports_and_analyses_what_ran(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {
            "pg:db": {"ping": "rejecting"},
            "http:backend": {"status": 503, "body": "down", "json_status": None},
        }
    )
    result = checkrun.run("-m", "database_connection_failed")
    stack = load_stack(checkrun.path / "testbed.toml")
    ran = sum(
        len(refs(stack, c)) for c in CHECKS.values() if "database_connection_failed" in c.alerts
    )
    # http_health is not called for by this alert: its failure is not seen.
    result.assert_outcomes(failed=1, passed=ran - 1, deselected=TESTBED_ITEMS - ran)
    summary = checkrun.summary()
    assert summary["root_causes"] == ["db:pg_ready"] and summary["partial"] is True
    assert "backend:http_health" not in {c["key"] for c in summary["checks"]}
