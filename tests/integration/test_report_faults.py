"""The remediation report against the real testbed, fault by fault.

For every fault: the root causes in the terminal, the JSON summary and the
Markdown note are the expected ones, every other failure names that root cause
in `caused_by` and carries no fix of its own, and the hints name the testbed's
real project and containers. The JUnit file validates against our CI schema
(tests/junit_schema.py), serially and under xdist: a root cause's failure
message starts with its hint, a consequence's with the root cause to fix first,
and no consequence carries a command that changes the stack. No output anywhere
holds the database password.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stackcheck.report.files import slug
from stackcheck.runbook import RESOLVE_RESOURCES
from testbed import CANARY_PASSWORD
from tests.checkrun import ROOT, CheckRun, run_checks
from tests.integration.test_checks_faults import _settle
from tests.junit_schema import validate_junit

SUMMARY_SCHEMA = json.loads((ROOT / "docs" / "summary.schema.json").read_text())
CHANGES_THE_STACK = ("[mutating]", "[destructive]")

ROOT_CAUSE: dict[str, str] = {
    "backend-stopped": "backend:container_running",
    "backend-crashloop": "backend:container_stable",
    "backend-oom-killed": "backend:container_stable",
    "backend-oom-crashloop": "backend:container_stable",
    "backend-memory-near-limit": "backend:memory_headroom",
    "backend-log-errors": "backend:logs_clean",
    "health-500": "backend:http_health",
    "health-hang": "backend:http_health",
    "health-trickle": "backend:http_health",
    "db-stopped": "db:container_running",
    "db-hung": "db:pg_ready",
    "db-connections-near-limit": "db:pg_connections",
    "db-connections-exhausted": "db:pg_connections",
    "db-disk-full": "db:pg_data_disk",
    "network-partition": "backend->db:net_ping",
    "dns-broken": "backend->db:net_resolve",
}

# Where a root cause's fix is not its check's usual step: an OOM kill goes to
# the runbook's memory step (R4), not to the crash-loop step.
FIX_STEP: dict[str, str] = {
    "backend-oom-killed": RESOLVE_RESOURCES.link,
    "backend-oom-crashloop": RESOLVE_RESOURCES.link,
}


def _reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


def _summary(testbed, tmp_path: Path) -> dict[str, Any]:
    path = _reports(tmp_path) / f"summary-{slug(testbed.project)}.json"
    summary: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    return summary


def _incident_clock(testbed, tmp_path: Path) -> Path:
    return _reports(tmp_path) / f"incident-{slug(testbed.project)}.json"


def _note(testbed, tmp_path: Path) -> str:
    notes = sorted(_reports(tmp_path).glob(f"incident-{slug(testbed.project)}-*.md"))
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


def _run_fault(testbed, fault, name: str, tmp_path: Path) -> tuple[CheckRun, dict[str, Any]]:
    stack = _stack_with_password_in_dsn(testbed, tmp_path)
    fault(name)
    _settle(testbed, name)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]
    return run, _summary(testbed, tmp_path)


@pytest.mark.parametrize("name", sorted(ROOT_CAUSE))
def test_root_cause_and_consequences(testbed, fault, name: str, tmp_path: Path) -> None:
    run, summary = _run_fault(testbed, fault, name, tmp_path)
    root = ROOT_CAUSE[name]

    assert summary["status"] == "unhealthy"
    assert summary["root_causes"] == [root]
    assert summary["blind_spots"] == []
    assert [c for c in summary["checks"] if c["outcome"] == "error"] == []
    failed = [c for c in summary["checks"] if c["outcome"] == "failed"]
    assert root in {c["key"] for c in failed}
    for check in failed:
        if check["key"] == root:
            assert (check["caused_by"], check["role"]) == (None, "root_cause"), check
        else:
            assert (check["caused_by"], check["role"]) == (root, "consequence"), check
            # Its root cause's fix comes first: a consequence suggests nothing itself.
            assert check["remediation"] == [] and check["safety"] == [], check

    # The root cause's hint uses this stack's compose project and real service.
    root_check = next(c for c in failed if c["key"] == root)
    service = root.split(":")[0].split("->")[0]
    assert root_check["remediation"], root_check
    assert any(
        f"-p {testbed.project}" in cmd and service in cmd for cmd in root_check["remediation"]
    )
    if root.endswith(("container_running", "container_stable")):
        assert f"{testbed.project}_{service}_1" in root_check["evidence"]
    if name in FIX_STEP:
        assert root_check["fix_step"] == FIX_STEP[name], root_check

    # Terminal: the root cause first, each consequence after it.
    report = run.remediation()
    assert f"ROOT CAUSE {root}:" in report
    assert report.count("ROOT CAUSE") == 1
    assert "BLIND SPOT" not in report
    for check in failed:
        if check["key"] != root:
            assert report.index(f"<- {check['key']}:") > report.index(f"ROOT CAUSE {root}")

    note = _note(testbed, tmp_path)
    assert f"### `{root}`" in note
    assert note.count("\n### `") == 1
    for check in failed:
        if check["key"] != root:
            assert f"- `{check['key']}`" in note

    assert CANARY_PASSWORD not in _all_output(run, tmp_path)


def test_db_disk_full_names_the_data_directory_and_its_volume(
    testbed, fault, tmp_path: Path
) -> None:
    run, summary = _run_fault(testbed, fault, "db-disk-full", tmp_path)
    assert summary["root_causes"] == ["db:pg_data_disk"]
    root = next(c for c in summary["checks"] if c["key"] == "db:pg_data_disk")
    # The data directory as the db container's environment sets it, and the
    # volume that holds it, as the engine names it: both from the real stack.
    env = dict(item.partition("=")[::2] for item in testbed.container("db").attrs["Config"]["Env"])
    data_dir = env.get("PGDATA", "/var/lib/postgresql/data")
    holders = [
        m
        for m in testbed.container("db").attrs["Mounts"]
        if data_dir == m["Destination"] or data_dir.startswith(m["Destination"].rstrip("/") + "/")
    ]
    assert holders, "the testbed's data directory should sit on a volume"
    volume = max(holders, key=lambda m: len(m["Destination"]))
    assert volume["Type"] == "volume", volume
    assert data_dir in root["evidence"], root
    assert f"volume {volume['Name']}" in root["evidence"], root
    percent = re.search(r"is (\d+)% full", root["evidence"])
    assert percent and int(percent.group(1)) >= 95, root["evidence"]
    assert "ROOT CAUSE db:pg_data_disk:" in run.remediation()


def test_backend_oom_crashloop_is_named_and_sent_to_the_memory_step(
    testbed, fault, tmp_path: Path
) -> None:
    run, summary = _run_fault(testbed, fault, "backend-oom-crashloop", tmp_path)
    assert summary["root_causes"] == ["backend:container_stable"]
    root = next(c for c in summary["checks"] if c["key"] == "backend:container_stable")
    assert "OOM-killed" in root["evidence"], root
    assert "crash-looping" in root["evidence"], root
    assert root["fix_step"] == RESOLVE_RESOURCES.link
    report = run.remediation()
    assert f"({RESOLVE_RESOURCES.link})" in report.split("ROOT CAUSE backend:container_stable")[1]


def test_two_independent_faults_give_two_root_causes(testbed, fault, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("backend-memory-near-limit")
    fault("db-connections-near-limit")
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    summary = _summary(testbed, tmp_path)
    assert sorted(summary["root_causes"]) == ["backend:memory_headroom", "db:pg_connections"]
    assert run.stdout.count("ROOT CAUSE") == 2


def _junit_cases(path: Path) -> list[ET.Element]:
    validate_junit(path)
    cases = list(ET.parse(path).getroot().iter("testcase"))
    assert cases
    assert all(case.find("properties") is None for case in cases)
    return cases


def _failures(cases: list[ET.Element]) -> dict[str, ET.Element]:
    return {case.get("name", ""): failure for case in cases for failure in case.findall("failure")}


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_junit_valid_healthy_and_unhealthy(
    testbed, fault, xdist: list[str], tmp_path: Path
) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    run = run_checks("--stack", str(stack), *xdist, tmp_path=tmp_path)
    assert run.returncode == 0
    assert _failures(_junit_cases(run.junit)) == {}

    fault("db-stopped")
    run = run_checks("--stack", str(stack), *xdist, tmp_path=tmp_path)
    assert run.returncode == 1
    failures = _failures(_junit_cases(run.junit))
    assert set(failures) == run.failed() and len(failures) > 1
    assert run.errors() == set(), run.stdout
    root = failures.pop("test_container_running[db]")
    assert re.match(
        r"db:container_running: .+ \(docs/runbook\.md#[\w-]+\)", root.get("message", "")
    ), root.get("message")
    for name, failure in failures.items():
        message = failure.get("message", "")
        assert message.startswith("consequence of db:container_running — fix that first"), (
            name,
            message,
        )
        text = message + "\n" + (failure.text or "")
        assert not any(mark in text for mark in CHANGES_THE_STACK), (name, text)


def test_db_stopped_only_the_root_cause_says_change_the_stack(
    testbed, fault, tmp_path: Path
) -> None:
    """What an engineer acts on first: the root cause's commands, never a consequence's.

    In the JUnit file a consequence's <failure> names the root cause to fix first
    and suggests no command that changes the stack; on the terminal the first
    line that says [mutating] or [destructive] is the root cause's own.
    """
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("db-stopped")
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1
    # A check that crashed or could not check would be an <error>, outside this test's view.
    assert run.errors() == set(), run.stdout

    cases = _junit_cases(run.junit)
    failures = _failures(cases)
    consequences = {k: v for k, v in failures.items() if k != "test_container_running[db]"}
    assert len(consequences) == len(failures) - 1 >= 9, sorted(failures)
    for name, failure in consequences.items():
        assert failure.get("message", "").startswith(
            "consequence of db:container_running — fix that first"
        ), (name, failure.get("message"))
        assert (failure.text or "").startswith(
            "consequence of db:container_running — fix that first"
        ), (name, failure.text)
        for text in (failure.get("message", ""), failure.text or ""):
            assert not any(mark in text for mark in CHANGES_THE_STACK), (name, text)
            # A command with an empty quoted argument is no command to type.
            assert " ''" not in text, (name, text)

    summary = _summary(testbed, tmp_path)
    root = next(c for c in summary["checks"] if c["key"] == "db:container_running")
    changing = [
        cmd
        for cmd, safety in zip(root["remediation"], root["safety"], strict=True)
        if safety in ("mutating", "destructive")
    ]
    assert changing, root
    lines = run.stdout.splitlines()
    first = next(line for line in lines if any(mark in line for mark in CHANGES_THE_STACK))
    assert first.split("]", 1)[1].strip() == changing[0], first
    assert f"-p {testbed.project}" in first and first.rstrip().endswith(" up -d db"), first
    # And every such line, wherever pytest or the Remediation prints it, is the root's.
    for line in lines:
        if any(mark in line for mark in CHANGES_THE_STACK):
            assert line.split("]", 1)[1].strip() in changing, (line, run.stdout)


def test_healthy_run_closes_the_incident(testbed, fault, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    fault("health-500")
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1
    assert _incident_clock(testbed, tmp_path).exists()
    testbed.reset()
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 0
    assert not _incident_clock(testbed, tmp_path).exists()
    assert _summary(testbed, tmp_path)["status"] == "healthy"


def test_alert_marker_selects_its_checks(testbed, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    run = run_checks("--stack", str(stack), "-m", "database_connection_failed", tmp_path=tmp_path)
    assert run.returncode == 0
    assert {"test_pg_ready[db]", "test_pg_connections[db]"} <= set(run.outcomes)
    assert "test_memory_headroom[backend]" not in run.outcomes
