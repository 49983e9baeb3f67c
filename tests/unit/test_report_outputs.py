"""Every output, checked with the tool its consumer uses: JUnit, JSON, Prometheus, Markdown.

The real checks run on fabricated facts (reportbench); what is asserted here is
what CI, dashboards, node_exporter and the on-call engineer read.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junit_schema import validate_junit
from prometheus_client.parser import text_string_to_metric_families
from reportbench import (
    DB_CONSEQUENCES,
    DB_STOPPED,
    TESTBED,
    TESTBED_ITEMS,
    TESTBED_SKIPPED,
    CheckRun,
    remediation,
    without_files,
)

pytest_plugins = ("pytester",)

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
SUMMARY_SCHEMA: dict[str, Any] = json.loads((DOCS / "summary.schema.json").read_text())
ROOT = "db:container_running"
ROOT_HINT = (
    "db:container_running: Start a stopped container (docs/runbook.md#resolve-start-container)\n"
    "  [read-only]   docker compose -p tb -f /srv/compose.yml ps db\n"
    "  [read-only]   docker compose -p tb -f /srv/compose.yml logs --tail=100 db\n"
    "  [mutating]    docker compose -p tb -f /srv/compose.yml up -d db\n"
)
CONSEQUENCE = f"consequence of {ROOT} — fix that first"
ENGINE_DOWN = "Docker engine unreachable at unix:///var/run/docker.sock: no such file"
# The Docker engine does not answer: every probe through it is blind, while
# PostgreSQL and the health URL, reached directly, still answer.
ENGINE_BLIND: dict[str, dict[str, Any]] = {
    key: {"blind": ENGINE_DOWN}
    for key in (
        "container:db",
        "container:backend",
        "stats:db",
        "stats:backend",
        "logs:db",
        "logs:backend",
        "datafs:db",
        "net:backend->db",
    )
}
ENGINE_BLIND_KEYS = 16  # every check but pg_ready, pg_connections and http_health
OTHER = {**TESTBED, "name": "other", "compose_project": "ot"}


def case_key(case: ET.Element) -> str:
    """``test_net_port[backend->db]`` -> ``backend->db:net_port``."""
    found = re.fullmatch(r"test_(\w+)\[(.+)\]", case.get("name", ""))
    assert found, case.get("name")
    return f"{found[2]}:{found[1]}"


def suite_of(junit: Path) -> ET.Element:
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    return suite


def properties(suite: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(p.get("name"), p.get("value")) for p in suite.iter("property")]


def metrics(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    families = text_string_to_metric_families(path.read_text())
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def by_check(samples: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    """Samples keyed like the summary: ``service:check`` or ``source->target:check``."""
    found = {}
    for labels, value in samples:
        where = labels["service"] + (f"->{labels['target']}" if labels["target"] else "")
        found[f"{where}:{labels['check']}"] = value
    return found


# -- JUnit -------------------------------------------------------------------


def test_junit_validates_and_each_failure_reads_as_its_role(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    assert checkrun.run("--junitxml=junit.xml").ret == 1
    junit = checkrun.path / "junit.xml"
    assert "junit-ci.xsd" in validate_junit(junit)
    suite = suite_of(junit)
    failures = {case_key(c): c.find("failure") for c in suite.iter("testcase")}
    failures = {key: f for key, f in failures.items() if f is not None}
    assert sorted(failures) == sorted([ROOT, *DB_CONSEQUENCES])

    root = failures.pop(ROOT)
    assert root is not None
    # The root cause's message is its fix: headline, then every command to type.
    assert root.get("message", "").startswith(ROOT_HINT)
    assert (root.text or "").startswith(ROOT_HINT)
    assert "evidence: container tb-db-1 is exited (exit code 0)" in (root.text or "")
    for key, failure in failures.items():
        assert failure is not None
        message, text = failure.get("message", ""), failure.text or ""
        assert message.startswith(CONSEQUENCE), key
        assert text.startswith(CONSEQUENCE), key
        # Whoever reads only the dashboard must not restart a consequence first.
        for unsafe in ("[mutating]", "[destructive]"):
            assert unsafe not in message and unsafe not in text, key


def test_junit_suite_is_the_stack_with_the_verdict_as_properties(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run("--junitxml=junit.xml")
    suite = suite_of(checkrun.path / "junit.xml")
    assert suite.get("name") == "testbed"
    props = properties(suite)
    assert ("stackcheck.status", "unhealthy") in props
    assert ("stackcheck.partial", "false") in props
    assert [v for n, v in props if n == "stackcheck.root_cause"] == [ROOT]
    assert not [v for n, v in props if n == "stackcheck.blind_spot"]


def test_junit_times_are_the_probe_durations_not_the_gathering_wait(checkrun: CheckRun) -> None:
    # factbench says every probe took 0.25 s and answers at once: had the wait
    # for the gathering been counted, the times would be near 0 (or all on one).
    checkrun.scenario(DB_STOPPED)
    checkrun.run("--junitxml=junit.xml")
    cases = list(suite_of(checkrun.path / "junit.xml").iter("testcase"))
    assert len(cases) == TESTBED_ITEMS
    assert {case.get("time") for case in cases} == {"0.250"}


def test_blind_checks_are_junit_errors_not_failures(checkrun: CheckRun) -> None:
    checkrun.scenario({"stats:backend": {"blind": ENGINE_DOWN}})
    checkrun.run("--junitxml=junit.xml")
    junit = checkrun.path / "junit.xml"
    assert "junit-ci.xsd" in validate_junit(junit)
    suite = suite_of(junit)
    errors = {case_key(c) for c in suite.iter("testcase") if c.find("error") is not None}
    assert errors == {"backend:memory_headroom", "backend:cpu_headroom"}
    assert not list(suite.iter("failure"))
    props = properties(suite)
    assert ("stackcheck.status", "unknown") in props
    assert sorted(str(v) for n, v in props if n == "stackcheck.blind_spot") == sorted(errors)


# -- Summary JSON ------------------------------------------------------------


def test_the_schema_is_valid_and_rejects_what_a_summary_must_not_say() -> None:
    jsonschema.Draft202012Validator.check_schema(SUMMARY_SCHEMA)
    validator = jsonschema.Draft202012Validator(SUMMARY_SCHEMA)
    check: dict[str, Any] = {
        "name": "pg_ready",
        "stack": "testbed",
        "service": "db",
        "target": None,
        "key": "db:pg_ready",
        "nodeid": "checks/test_postgres.py::test_pg_ready[db]",
        "outcome": "failed",
        "role": "consequence",
        "duration_s": 0.25,
        "runbook_step": "docs/runbook.md#diagnose-database",
        "fix_step": "docs/runbook.md#resolve-database",
        "remediation": [],
        "safety": [],
        "caused_by": ROOT,
        "evidence": "no response",
    }
    doc: dict[str, Any] = {
        "stack": "testbed",
        "status": "unhealthy",
        "started_at": "2026-11-28T02:00:00+00:00",
        "duration_s": 1.0,
        "partial": False,
        "checks": [check],
        "root_causes": [],
        "blind_spots": [],
        "changes": [],
        "stacks": [],
    }
    change: dict[str, Any] = {
        "stack": "testbed",
        "service": "backend",
        "what": "image changed",
        "detail": "app:1.4.2 → app:1.5.0",
        "at": "2026-11-28T01:48:00+00:00",
        "ago_s": 720.0,
        "line": "backend image changed 12 min ago: app:1.4.2 → app:1.5.0",
    }
    assert validator.is_valid(doc)
    assert validator.is_valid({**doc, "changes": [change]})
    bad = [
        {k: v for k, v in doc.items() if k != "changes"},
        {**doc, "changes": [{**change, "ago_s": -1}]},
        {**doc, "changes": [{**change, "value": "hunter2"}]},  # nothing but its fields
        {**doc, "status": "degraded"},
        {**doc, "incident": None},  # per stack now, not at the top
        {**doc, "checks": [{**check, "remediation": ["docker compose restart db"]}]},
        {**doc, "checks": [{**check, "role": "blind_spot"}]},  # a blind spot is an error
        {**doc, "checks": [{**check, "name": "Pg-Ready"}]},
        {**doc, "checks": [{**check, "fix_step": "resolve-database"}]},
    ]
    for document in bad:
        assert not validator.is_valid(document), document


def test_summary_json_matches_its_schema_with_roles(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    datetime.fromisoformat(summary["started_at"])
    assert summary["stack"] == "testbed" and summary["status"] == "unhealthy"
    assert summary["partial"] is False and summary["blind_spots"] == []
    assert summary["root_causes"] == [ROOT]
    checks = checkrun.checks()
    roles = {key: c["role"] for key, c in checks.items() if c["role"]}
    assert roles == {ROOT: "root_cause", **{k: "consequence" for k in DB_CONSEQUENCES}}
    assert all(checks[k]["caused_by"] == ROOT for k in DB_CONSEQUENCES)
    assert checks[ROOT]["remediation"][-1] == "docker compose -p tb -f /srv/compose.yml up -d db"
    assert checks[ROOT]["safety"] == ["read-only", "read-only", "mutating"]
    assert checks[ROOT]["fix_step"] == "docs/runbook.md#resolve-start-container"
    port = checks["backend->db:net_port"]
    assert (port["service"], port["target"], port["name"]) == ("backend", "db", "net_port")
    (stack,) = summary["stacks"]
    assert stack["name"] == "testbed" and stack["status"] == "unhealthy"
    assert stack["incident"]["runs"] == 1 and stack["incident"]["closed_at"] is None


def test_blind_checks_are_blind_spots_in_the_summary(checkrun: CheckRun) -> None:
    checkrun.scenario({"stats:backend": {"blind": ENGINE_DOWN}})
    checkrun.run()
    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    blind = ["backend:memory_headroom", "backend:cpu_headroom"]
    assert summary["status"] == "unknown" and summary["partial"] is False
    assert sorted(summary["blind_spots"]) == sorted(blind)
    assert sorted(summary["stacks"][0]["blind_spots"]) == sorted(blind)
    checks = checkrun.checks()
    for key in blind:
        assert checks[key]["outcome"] == "error" and checks[key]["role"] == "blind_spot"
        assert ENGINE_DOWN in checks[key]["evidence"]
    assert summary["stacks"][0]["incident"] is None  # blindness opens no incident


def test_a_healthy_run_writes_a_healthy_summary_and_no_note(checkrun: CheckRun) -> None:
    checkrun.run().assert_outcomes(passed=TESTBED_ITEMS - TESTBED_SKIPPED, skipped=TESTBED_SKIPPED)
    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert summary["status"] == "healthy" and summary["root_causes"] == []
    assert all(c["role"] is None and c["remediation"] == [] for c in summary["checks"])
    assert summary["stacks"][0]["incident"] is None
    assert not list(checkrun.reports.glob("incident-*.md"))
    assert not (checkrun.reports / "incident-testbed.json").exists()


def test_the_whole_run_s_summary_keeps_each_stack_apart(checkrun: CheckRun) -> None:
    checkrun.scenario({}, stacks=[TESTBED, OTHER], by_stack={"testbed": DB_STOPPED})
    checkrun.run("--summary-json=all.json")
    summary = json.loads((checkrun.path / "all.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert summary["stack"] == "testbed, other" and summary["status"] == "unhealthy"
    assert summary["root_causes"] == [f"testbed/{ROOT}"]
    stacks = {s["name"]: s for s in summary["stacks"]}
    assert stacks["testbed"]["status"] == "unhealthy" and stacks["other"]["status"] == "healthy"
    assert stacks["testbed"]["incident"]["runs"] == 1
    assert stacks["other"]["incident"] is None
    for name in ("testbed", "other"):  # and each stack's own file
        jsonschema.validate(checkrun.summary(name), SUMMARY_SCHEMA)


# -- Prometheus --------------------------------------------------------------


def test_prometheus_textfile_parses_with_the_verdicts(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    found = metrics(checkrun.reports / "stackcheck-testbed.prom")
    success = by_check(found["stackcheck_check_success"])
    assert len(success) == TESTBED_ITEMS - TESTBED_SKIPPED
    assert {k for k, v in success.items() if v == 0} == {ROOT, *DB_CONSEQUENCES}
    assert success["backend:container_running"] == 1
    assert found["stackcheck_check_blind"] == []
    assert all(labels["stack"] == "testbed" for labels, _ in found["stackcheck_check_success"])
    assert {v for _, v in found["stackcheck_check_duration_seconds"]} == {0.25}
    status = {labels["status"]: v for labels, v in found["stackcheck_stack_status"]}
    assert status == {"healthy": 0, "unhealthy": 1, "unknown": 0}
    started = datetime.fromisoformat(checkrun.summary()["started_at"]).timestamp()
    assert found["stackcheck_last_run_timestamp_seconds"] == [({"stack": "testbed"}, started)]
    assert found["stackcheck_stack_healthy"] == [({"stack": "testbed"}, 0)]
    assert found["stackcheck_root_causes"] == [({"stack": "testbed"}, 1)]
    # The failing run opened an incident: when, for the escalation alert.
    incident = checkrun.summary()["stacks"][0]["incident"]
    opened = datetime.fromisoformat(incident["opened_at"]).timestamp()
    assert found["stackcheck_incident_opened_timestamp_seconds"] == [({"stack": "testbed"}, opened)]
    checkrun.scenario({})
    checkrun.run()  # healthy: the incident closes, and the gauge goes
    found = metrics(checkrun.reports / "stackcheck-testbed.prom")
    assert found["stackcheck_incident_opened_timestamp_seconds"] == []


def test_prometheus_says_unknown_for_a_blind_only_run(checkrun: CheckRun) -> None:
    checkrun.scenario(ENGINE_BLIND)
    # The host is seen through testinfra, not the engine: its checks still pass.
    checkrun.run().assert_outcomes(passed=6, errors=ENGINE_BLIND_KEYS)
    found = metrics(checkrun.reports / "stackcheck-testbed.prom")
    blind = by_check(found["stackcheck_check_blind"])
    assert len(blind) == ENGINE_BLIND_KEYS and set(blind.values()) == {1}
    # A blind check has no success sample: 0 would claim it failed, 1 that it passed.
    success = by_check(found["stackcheck_check_success"])
    assert success == {
        "db:pg_ready": 1,
        "db:pg_connections": 1,
        "backend:http_health": 1,
        "@host:host_engine_running": 1,
        "@host:host_disk": 1,
        "@host:host_memory": 1,
    }
    assert ({"stack": "testbed", "status": "unknown"}, 1) in found["stackcheck_stack_status"]
    assert ({"stack": "testbed", "status": "healthy"}, 0) in found["stackcheck_stack_status"]
    assert found["stackcheck_stack_healthy"] == [({"stack": "testbed"}, 0)]


# -- Markdown note -----------------------------------------------------------


def test_an_unhealthy_run_drafts_the_incident_note(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    checkrun.run()
    (note,) = checkrun.reports.glob("incident-testbed-*.md")
    text = note.read_text()
    assert text.startswith("# Incident: API Service Down (testbed)")
    assert "- Status: open" in text
    timeline = [line for line in text.splitlines() if line.startswith("| 20")]
    assert len(timeline) == 2
    assert all(f"| unhealthy | `{ROOT}` |" in row for row in timeline)
    assert f"### `{ROOT}`" in text
    assert "[Start a stopped container](docs/runbook.md#resolve-start-container)" in text
    assert "container tb-db-1 is exited (exit code 0)" in text
    for key in DB_CONSEQUENCES:
        assert f"- `{key}`: " in text
    assert f"docker compose -p tb -f /srv/compose.yml up -d db   # mutating, for {ROOT}" in text
    assert "## What was done" in text and "- [ ] " in text


def test_output_paths_follow_the_options(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run(
        "--reports-dir=out",
        "--summary-json=s/summary.json",
        "--prom-file=p/node.prom",
        "--incident-note=n/note.md",
    )
    for path in (
        "out/incident-testbed.json",
        "out/summary-testbed.json",
        "out/stackcheck-testbed.prom",
        "s/summary.json",
        "p/node.prom",
        "n/note.md",
    ):
        assert (checkrun.path / path).is_file(), path
    assert not checkrun.reports.exists()
    assert not list((checkrun.path / "out").glob("*.md"))
    result.stdout.fnmatch_lines(
        [
            "reports: out/summary-testbed.json, out/stackcheck-testbed.prom, n/note.md, "
            "s/summary.json, p/node.prom"
        ]
    )


def test_nothing_is_written_when_no_check_ran(checkrun: CheckRun) -> None:
    checkrun.run("--collect-only")
    assert not checkrun.reports.exists()


# -- A reports directory that cannot be written --------------------------------


@pytest.mark.parametrize(
    "where",
    ["a-file", "a-file/reports", "/proc/self/nope"],
    ids=["is-a-file", "under-a-file", "in-proc"],
)
def test_a_broken_reports_dir_costs_nothing_of_the_report(checkrun: CheckRun, where: str) -> None:
    # Chosen to fail for root too, which ignores permission bits.
    (checkrun.path / "a-file").write_text("not a directory\n")
    checkrun.scenario(DB_STOPPED)
    good = checkrun.run("--reports-dir=good")
    result = checkrun.run(f"--reports-dir={where}")
    assert result.ret == 1  # unhealthy, as with a working reports dir
    assert good.ret == 1
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output and "INTERNALERROR" not in output
    section = remediation(result)
    # The whole section, line for line, but for the reports and the incident clock.
    assert without_files(section) == without_files(remediation(good))
    assert f"ROOT CAUSE {ROOT}: Start a stopped container" in "\n".join(section)
    problems = [line for line in section if line.startswith("reports: cannot ")]
    # One line for the directory, not one per file it would have held.
    assert len(problems) == 1, problems
    assert problems[0].startswith("reports: cannot write "), problems
    # Never "No open incident" when the clock could not be read or kept.
    assert "No open incident." not in section
    assert any(line.startswith("Incident clock unknown") for line in section), section
    assert (checkrun.path / "a-file").read_text() == "not a directory\n"


def test_a_broken_reports_dir_leaves_a_healthy_run_healthy(checkrun: CheckRun) -> None:
    (checkrun.path / "a-file").write_text("")
    result = checkrun.run("--reports-dir=a-file")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["testbed (compose project tb): healthy", "reports: cannot write *"]
    )


# -- Exit status ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "args", "status"),
    [
        ({}, (), 0),
        (DB_STOPPED, (), 1),
        (ENGINE_BLIND, (), 6),  # unknown: a scheduler tells blindness from an outage
        ({}, ("-k", "http"), 0),  # partial but healthy: nothing failed
    ],
    ids=["healthy", "unhealthy", "blind-only", "partial-healthy"],
)
def test_exit_status_says_the_verdict(
    checkrun: CheckRun, changes: dict[str, Any], args: tuple[str, ...], status: int
) -> None:
    checkrun.scenario(changes)
    assert checkrun.run(*args).ret == status


def test_summary_json_to_standard_output_is_the_only_thing_there(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    # A process of its own: the option moves the process's standard output.
    result = checkrun.run("--summary-json", "-", subprocess=True)
    doc = json.loads("\n".join(result.outlines))  # nothing but the JSON
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["status"] == "unhealthy"
    assert [s["name"] for s in doc["stacks"]] == ["testbed"]
    assert doc["checks"] == checkrun.summary()["checks"]  # as in the stack's own file
    # pytest's own report, the Remediation included, went to standard error.
    assert any("ROOT CAUSE db:container_running" in line for line in result.errlines)
    assert result.ret == 1
