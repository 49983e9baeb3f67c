"""Alert markers: `pytest checks/ -m ALERT` runs the checks that alert calls for."""

from __future__ import annotations

import pytest
from reportbench import CheckRun

from stackcheck.report.catalogue import ALERTS, CATALOGUE

pytest_plugins = ("pytester",)


def selected_checks(checkrun: CheckRun, *args: str) -> set[str]:
    result = checkrun.run("--collect-only", "-q", "--strict-markers", *args)
    ids = [line for line in result.stdout.lines if line.startswith("test_checks.py::")]
    return {line.split("::test_")[1].split("[")[0] for line in ids}


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_each_alert_selects_its_checks(checkrun: CheckRun, alert: str) -> None:
    expected = {check for check, entry in CATALOGUE.items() if alert in entry.alerts}
    assert selected_checks(checkrun, "-m", alert) == expected


def test_database_connection_failed_calls_for_the_database_path(checkrun: CheckRun) -> None:
    assert selected_checks(checkrun, "-m", "database_connection_failed") == {
        "container_running",
        "container_stable",
        "pg_ready",
        "pg_connections",
        "net_resolve",
        "net_ping",
        "net_port",
    }


def test_the_runbook_s_own_alert_runs_every_check(checkrun: CheckRun) -> None:
    assert selected_checks(checkrun, "-m", "api_service_down") == set(CATALOGUE)


def test_markers_are_registered_with_their_alert(checkrun: CheckRun) -> None:
    result = checkrun.run("--markers")
    for marker, alert in (
        ("api_service_down", "APIServiceDown"),
        ("health_check_failing", "HealthCheckFailing"),
        ("database_connection_failed", "DatabaseConnectionFailed"),
        ("high_error_rate", "HighErrorRate"),
    ):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}: {alert}: *"])


def test_a_selected_run_reports_and_analyses_what_ran(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {
            "db:pg_ready": {"evidence": "rejecting"},
            "backend:http_health": {"evidence": "503"},
        }
    )
    result = checkrun.run("-m", "database_connection_failed")
    result.assert_outcomes(failed=1, passed=8, deselected=9)
    summary = checkrun.summary()
    assert summary["root_causes"] == ["db:pg_ready"] and summary["partial"] is True
