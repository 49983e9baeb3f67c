"""The escalation clock: first failing run opens the incident, a healthy run closes it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from reportbench import DB_STOPPED, CheckRun

pytest_plugins = ("pytester",)


def clock(checkrun: CheckRun) -> dict[str, object]:
    data: dict[str, object] = json.loads((checkrun.reports / "incident.json").read_text())
    return data


def age(checkrun: CheckRun, minutes: float) -> None:
    """Pretend the incident was opened ``minutes`` ago."""
    path = checkrun.reports / "incident.json"
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
    assert checkrun.summary()["incident"]["runs"] == 2


def test_past_fifteen_minutes_it_says_escalate(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 16)
    result = checkrun.run()
    line = escalation_line(result)
    assert line.startswith("ESCALATE: incident open for 16 min")
    assert "unresolved past 15 min: page the team lead, notify stakeholders in Slack" in line
    incident = checkrun.summary()["incident"]
    assert incident["escalate"] is True and incident["open_for_s"] >= 16 * 60


def test_before_fifteen_minutes_it_counts_down(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 13.5)
    line = escalation_line(checkrun.run())
    assert line.startswith("Incident open for 13 min")
    assert "if still unresolved in 2 min, escalate" in line
    assert checkrun.summary()["incident"]["escalate"] is False


def test_a_healthy_run_closes_the_incident(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    age(checkrun, 20)
    checkrun.scenario({})
    result = checkrun.run()
    assert not (checkrun.reports / "incident.json").exists()
    assert escalation_line(result).startswith("Incident resolved after 20 min")
    assert checkrun.summary()["incident"]["closed_at"] is not None
    # The next failure is a new incident, with its clock started afresh.
    checkrun.scenario(DB_STOPPED)
    assert escalation_line(checkrun.run()).startswith("Incident open for 0 min")
    assert escalation_line(checkrun.run()).startswith("Incident open for 0 min")


def test_a_healthy_partial_run_does_not_close_it(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    checkrun.scenario({})
    for selection in (("-k", "backend"), ("-m", "high_error_rate")):
        result = checkrun.run(*selection)
        assert (checkrun.reports / "incident.json").exists()
        assert "only a run of all the checks" in escalation_line(result)
        assert checkrun.summary()["partial"] is True


def test_no_incident_without_a_failure(checkrun: CheckRun) -> None:
    result = checkrun.run()
    assert escalation_line(result) == "No open incident."
    assert not (checkrun.reports / "incident.json").exists()


def test_a_damaged_clock_starts_a_new_incident(checkrun: CheckRun) -> None:
    checkrun.reports.mkdir()
    (checkrun.reports / "incident.json").write_text("{not json")
    checkrun.scenario(DB_STOPPED)
    checkrun.run().assert_outcomes(failed=len(DB_STOPPED), passed=18 - len(DB_STOPPED))
    assert clock(checkrun)["opened_at"] == checkrun.summary()["started_at"]
