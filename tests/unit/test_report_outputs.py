"""Every output, checked with the tool its consumer uses: JUnit, JSON, Prometheus, Markdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import jsonschema
import xmlschema
from prometheus_client.parser import text_string_to_metric_families
from reportbench import DB_CONSEQUENCES, DB_STOPPED, SCHEMAS, CheckRun

pytest_plugins = ("pytester",)

DOCS = Path(__file__).parent.parent.parent / "docs"
JUNIT_XSD = xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd")
SUMMARY_SCHEMA = json.loads((DOCS / "summary.schema.json").read_text())


def test_junit_validates_and_failures_start_with_the_hint(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run("--junitxml=junit.xml")
    junit = checkrun.path / "junit.xml"
    JUNIT_XSD.validate(junit)
    failures = {
        case.get("name"): case.find("failure")
        for case in ET.parse(junit).iter("testcase")
        if case.find("failure") is not None
    }
    assert len(failures) == len(DB_STOPPED)
    running = failures["test_container_running[db]"]
    assert running is not None
    headline = (
        "db:container_running: Start a stopped container (docs/runbook.md#resolve-start-container)"
    )
    message = running.get("message", "")
    assert message.startswith(headline + "\n  [read-only]   docker compose -p tb")
    assert "[mutating]    docker compose -p tb -f /srv/compose.yml up -d db" in message
    assert (running.text or "").startswith(headline)
    assert "evidence: container tb-db-1 is exited (exit code 0)" in (running.text or "")
    for name, failure in failures.items():
        assert failure is not None and failure.get("message", "").split(": ")[0] in DB_STOPPED, name
    assert not list(ET.parse(junit).iter("properties"))


def test_summary_json_matches_its_schema(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    datetime.fromisoformat(summary["started_at"])
    assert summary["stack"] == "testbed" and summary["status"] == "unhealthy"
    pg = checkrun.checks()["db:pg_ready"]
    assert pg["name"] == "pg_ready" and pg["service"] == "db" and pg["target"] is None
    assert pg["outcome"] == "failed" and pg["evidence"] == "no response from 127.0.0.1:15432"
    assert pg["runbook_step"] == "docs/runbook.md#diagnose-database"
    assert pg["remediation"][0].endswith("exec db pg_isready -U scheduler")
    assert pg["safety"] == ["read-only", "mutating", "mutating"]
    port = checkrun.checks()["backend->db:net_port"]
    assert (port["service"], port["target"]) == ("backend", "db")
    assert summary["incident"]["runs"] == 1


def test_a_healthy_run_writes_a_healthy_summary_and_no_note(checkrun: CheckRun) -> None:
    checkrun.run().assert_outcomes(passed=18)
    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert summary["status"] == "healthy" and summary["root_causes"] == []
    assert all(c["remediation"] == [] and c["caused_by"] is None for c in summary["checks"])
    assert summary["incident"] is None
    assert not list(checkrun.reports.glob("incident*"))


def metrics(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    families = text_string_to_metric_families(path.read_text())
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def test_prometheus_textfile_parses(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    found = metrics(checkrun.reports / "stackcheck.prom")
    success = {
        (labels["service"], labels["check"], labels["target"]): value
        for labels, value in found["stackcheck_check_success"]
    }
    assert len(success) == 18
    assert success[("db", "container_running", "")] == 0
    assert success[("backend", "net_port", "db")] == 0
    assert success[("backend", "container_running", "")] == 1
    assert all(labels["stack"] == "testbed" for labels, _ in found["stackcheck_check_success"])
    assert {v for _, v in found["stackcheck_check_duration_seconds"]} == {0.25}
    started = datetime.fromisoformat(checkrun.summary()["started_at"]).timestamp()
    assert found["stackcheck_last_run_timestamp_seconds"] == [({"stack": "testbed"}, started)]
    assert found["stackcheck_stack_healthy"] == [({"stack": "testbed"}, 0)]
    assert found["stackcheck_root_causes"] == [({"stack": "testbed"}, 1)]


def test_incident_note_is_a_draft_with_timeline_causes_and_checklist(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    checkrun.run()
    (note,) = checkrun.reports.glob("incident-*.md")
    text = note.read_text()
    assert text.startswith("# Incident: API Service Down (testbed)")
    timeline = [line for line in text.splitlines() if line.startswith("| 20")]
    assert len(timeline) == 2
    assert all("| unhealthy | `db:container_running` |" in row for row in timeline)
    assert "### `db:container_running`" in text
    assert "[Start a stopped container](docs/runbook.md#resolve-start-container)" in text
    assert "container tb-db-1 is exited (exit code 0)" in text
    for key in DB_CONSEQUENCES:
        assert f"- `{key}`: " in text
    assert "docker compose -p tb -f /srv/compose.yml up -d db   # mutating" in text
    assert "- [ ] Document the root cause in the incident report" in text
    assert "## What was done" in text


def test_output_paths_follow_the_options(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run(
        "--reports-dir=out",
        "--summary-json=s/summary.json",
        "--prom-file=p/node.prom",
        "--incident-note=n/note.md",
    )
    for path in ("out/incident.json", "s/summary.json", "p/node.prom", "n/note.md"):
        assert (checkrun.path / path).is_file(), path
    assert not checkrun.reports.exists()
    result.stdout.fnmatch_lines(["reports: s/summary.json, p/node.prom, n/note.md"])


def test_nothing_is_written_when_no_check_ran(checkrun: CheckRun) -> None:
    checkrun.run("--collect-only")
    assert not checkrun.reports.exists()
