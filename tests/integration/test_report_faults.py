"""The remediation report against the real testbed, fault by fault.

For every fault: the root causes in the terminal, the JSON summary and the
Markdown note are the expected ones, every other failure names that root cause
in `caused_by`, and the hints name the testbed's real project and containers.
The JUnit file validates against our CI schema (tests/junit_schema.py),
serially and under xdist, with the hint at the start of each failure message.
No output anywhere holds the database password.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from testbed import CANARY_PASSWORD
from tests.checkrun import ROOT, CheckRun, run_checks
from tests.integration.test_checks_faults import _settle
from tests.junit_schema import validate_junit

SUMMARY_SCHEMA = json.loads((ROOT / "docs" / "summary.schema.json").read_text())

ROOT_CAUSE: dict[str, str] = {
    "backend-stopped": "backend:container_running",
    "backend-crashloop": "backend:container_stable",
    "backend-oom-killed": "backend:container_stable",
    "backend-memory-near-limit": "backend:memory_headroom",
    "backend-log-errors": "backend:logs_clean",
    "health-500": "backend:http_health",
    "health-hang": "backend:http_health",
    "health-trickle": "backend:http_health",
    "db-stopped": "db:container_running",
    "db-hung": "db:pg_ready",
    "db-connections-near-limit": "db:pg_connections",
    "db-connections-exhausted": "db:pg_connections",
    "network-partition": "backend->db:net_ping",
    "dns-broken": "backend->db:net_resolve",
}


def _reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


def _summary(tmp_path: Path) -> dict:
    summary = json.loads((_reports(tmp_path) / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    return summary


def _note(tmp_path: Path) -> str:
    notes = sorted(_reports(tmp_path).glob("incident-*.md"))
    assert len(notes) == 1, notes
    return notes[0].read_text()


def _all_output(run: CheckRun, tmp_path: Path) -> str:
    texts = [run.stdout, run.stderr, run.junit.read_text()]
    texts += [p.read_text(errors="replace") for p in _reports(tmp_path).rglob("*") if p.is_file()]
    return "\n".join(texts)


def _stack_with_password_in_dsn(testbed, tmp_path: Path) -> Path:
    path = testbed.write_stack_file(tmp_path / "stack.toml")
    text = path.read_text().replace(
        "postgresql://scheduler@", f"postgresql://scheduler:{CANARY_PASSWORD}@"
    )
    assert CANARY_PASSWORD in text
    path.write_text(text)
    return path


def test_every_fault_has_a_root_cause() -> None:
    from testbed import FAULTS

    assert set(ROOT_CAUSE) == set(FAULTS)


@pytest.mark.parametrize("name", sorted(ROOT_CAUSE))
def test_root_cause_and_consequences(testbed, fault, name: str, tmp_path: Path) -> None:
    stack = _stack_with_password_in_dsn(testbed, tmp_path)
    fault(name)
    _settle(testbed, name)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    root = ROOT_CAUSE[name]
    assert run.returncode == 1

    summary = _summary(tmp_path)
    assert summary["status"] == "unhealthy"
    assert summary["root_causes"] == [root]
    failed = [c for c in summary["checks"] if c["outcome"] in ("failed", "error")]
    assert root in {c["key"] for c in failed}
    for check in failed:
        expected = None if check["key"] == root else root
        assert check["caused_by"] == expected, check

    # The root cause's hint uses this stack's compose project and real service.
    root_check = next(c for c in failed if c["key"] == root)
    service = root.split(":")[0].split("->")[0]
    assert root_check["remediation"], root_check
    assert any(
        f"-p {testbed.project}" in cmd and service in cmd for cmd in root_check["remediation"]
    )
    if root.endswith(("container_running", "container_stable")):
        assert f"{testbed.project}_{service}_1" in root_check["evidence"]

    # Terminal: the root cause first, each consequence after it.
    report = run.stdout[run.stdout.index("Remediation") :]
    assert f"ROOT CAUSE {root}:" in report
    assert report.count("ROOT CAUSE") == 1
    for check in failed:
        if check["key"] != root:
            assert report.index(f"<- {check['key']}:") > report.index(f"ROOT CAUSE {root}")

    note = _note(tmp_path)
    assert f"### `{root}`" in note
    assert note.count("\n### `") == 1
    for check in failed:
        if check["key"] != root:
            assert f"- `{check['key']}`" in note

    assert CANARY_PASSWORD not in _all_output(run, tmp_path)


def test_two_independent_faults_give_two_root_causes(testbed, fault, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("backend-memory-near-limit")
    fault("db-connections-near-limit")
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    summary = _summary(tmp_path)
    assert sorted(summary["root_causes"]) == ["backend:memory_headroom", "db:pg_connections"]
    assert run.stdout.count("ROOT CAUSE") == 2


def _validate_junit(path: Path) -> list[str]:
    validate_junit(path)
    cases = list(ET.parse(path).getroot().iter("testcase"))
    assert cases
    assert all(case.find("properties") is None for case in cases)
    return [f.get("message", "") for case in cases for f in case.findall("failure")]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_junit_valid_healthy_and_unhealthy(
    testbed, fault, xdist: list[str], tmp_path: Path
) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    run = run_checks("--stack", str(stack), *xdist, tmp_path=tmp_path)
    assert run.returncode == 0
    assert _validate_junit(run.junit) == []

    fault("db-stopped")
    run = run_checks("--stack", str(stack), *xdist, tmp_path=tmp_path)
    assert run.returncode == 1
    messages = _validate_junit(run.junit)
    assert len(messages) == len(run.failed()) > 1
    assert any(m.startswith("db:container_running: ") for m in messages), messages
    for message in messages:
        assert re.match(r"[\w>-]+:\w+: .+ \(docs/runbook\.md#[\w-]+\)", message), message


def test_healthy_run_closes_the_incident(testbed, fault, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("health-500")
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1
    assert (_reports(tmp_path) / "incident.json").exists()
    testbed.reset()
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 0
    assert not (_reports(tmp_path) / "incident.json").exists()
    assert _summary(tmp_path)["status"] == "healthy"


def test_alert_marker_selects_its_checks(testbed, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    run = run_checks("--stack", str(stack), "-m", "database_connection_failed", tmp_path=tmp_path)
    assert run.returncode == 0
    assert {"test_pg_ready[db]", "test_pg_connections[db]"} <= set(run.outcomes)
    assert "test_memory_headroom[backend]" not in run.outcomes
