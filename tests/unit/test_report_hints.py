"""Live fix hints: the runbook step and its commands, filled in with real, quoted values."""

from __future__ import annotations

import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any

import factbench
import pytest
from definitions import definitions
from reportbench import (
    BACKEND_OOM,
    DB_CONSEQUENCES,
    DB_STOPPED,
    PASSWORD,
    TESTBED,
    CheckRun,
    stack_toml,
)

from stackcheck import payload as payloads
from stackcheck import runbook
from stackcheck.config import Service, Stack, load_stack
from stackcheck.definition import Check, Fix, Safety
from stackcheck.model import CheckRef
from stackcheck.probes.facts import StackFacts
from stackcheck.probes.gather import Need
from stackcheck.report import registry
from stackcheck.report.hints import render
from stackcheck.where import needs_of, refs

pytest_plugins = ("pytester",)

CHECKS = definitions()


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack(
        Path("stack.toml"),
        "prod",
        "residency",
        {
            "db": Service("db", postgres_dsn="postgresql://app:pw@db:5432/sched", port=5432),
            "backend": Service("backend", depends_on=("db",), health_url="http://b:8000/health"),
            "worker": Service("worker", depends_on=("db",)),
        },
    )
    registry.remember([stack])
    yield stack
    registry.remember([])


def payload(check: str, service: str, target: str | None = None, **context: Any) -> dict[str, Any]:
    """A check's payload as the collector builds it, by hand: the context is the test's."""
    return {
        "stack": "prod",
        "compose_project": "residency",
        "check": check,
        "service": service,
        "target": target,
        "evidence": "it broke",
        "duration_s": 0.1,
        "context": context,
        "definition": CHECKS[check].to_payload(),
    }


def test_commands_use_the_stack_s_compose_command_and_names(stack: Stack) -> None:
    compose = "docker-compose -p residency -f /srv/docker-compose.yml"
    hint = render(payload("container_running", "db", compose_cmd=compose, container="res_db_1"))
    assert hint.commands == (
        (Safety.READ_ONLY, f"{compose} ps db"),
        (Safety.READ_ONLY, f"{compose} logs --tail=100 db"),
        (Safety.MUTATING, f"{compose} up -d db"),
    )


def test_without_a_compose_command_the_project_is_named(stack: Stack) -> None:
    hint = render(payload("container_running", "db"))
    assert hint.commands[0] == (Safety.READ_ONLY, "docker compose -p residency ps db")


def test_database_restart_then_every_service_that_uses_it(stack: Stack) -> None:
    hint = render(payload("pg_ready", "db", pg_user="scheduler"))
    assert [c for _, c in hint.commands] == [
        "docker compose -p residency exec db pg_isready -U scheduler",
        "docker compose -p residency restart db",
        "docker compose -p residency restart backend worker",
    ]


def test_a_restart_of_dependents_is_dropped_when_there_are_none(stack: Stack) -> None:
    hint = render(payload("pg_ready", "backend"))
    assert not any("restart backend worker" in c for _, c in hint.commands)
    assert len(hint.commands) == len(CHECKS["pg_ready"].fix.commands) - 1


def test_values_missing_from_the_probe_come_from_the_stack_file(stack: Stack) -> None:
    pg = render(payload("pg_connections", "db"))
    assert "psql -U app -d sched" in pg.commands[0][1]
    port = render(payload("net_port", "backend", "db"))
    assert port.commands[0][1].endswith("exec backend nc -zv db 5432")
    http = render(payload("http_health", "backend"))
    assert http.commands[0][1] == "curl -v http://b:8000/health"


def test_an_unknown_value_stays_a_visible_placeholder(stack: Stack) -> None:
    hint = render(payload("container_healthy", "backend"))
    assert hint.commands[0][1].endswith("{{json .State.Health}}' <container>")


def test_live_values_and_log_lines_are_quoted(stack: Stack) -> None:
    hint = render(
        payload(
            "pg_connections",
            "db",
            connections_in_use=29,
            max_connections=30,
            connections_usable=27,
            log_lines=[f"FATAL {i}" for i in range(15)],
        )
    )
    facts = dict(hint.facts)
    assert (facts["connections_in_use"], facts["max_connections"]) == ("29", "30")
    assert hint.log_lines[-1] == "FATAL 14" and len(hint.log_lines) == 10
    text = hint.text()
    assert text.startswith("db:pg_connections: Free database connections")
    assert "(docs/runbook.md#resolve-connections)" in text.splitlines()[0]
    assert "live: connections_in_use=29, max_connections=30, connections_usable=27" in text


def test_a_hostile_value_is_one_shell_word(stack: Stack) -> None:
    hostile = "http://b:8000/health?a=1&b=$(id)`id`; rm -rf /"
    hint = render(payload("http_health", "backend", health_url=hostile))
    assert shlex.split(hint.commands[0][1]) == ["curl", "-v", hostile]


# --- Every template of every real check, filled from the payload the collector builds ---


def load_testbed(tmp_path: Path, **head: Any) -> Stack:
    """The bench's testbed stack file, loaded (and so validated) like the plugin does."""
    path = tmp_path / "testbed.toml"
    path.write_text(stack_toml({**TESTBED, **head}))
    return load_stack(path)


def healthy_facts(stack: Stack) -> StackFacts:
    """What the probes see on a healthy stack, for every need of every check (factbench)."""
    needs = {n for c in CHECKS.values() for r in refs(stack, c) for n in needs_of(r, c)}
    # As gather() does: the hints read the container of every service involved.
    needs |= {Need("container", s) for s in stack.services}
    return factbench.fabricate(stack, frozenset(needs), {})


def every_fix() -> Iterator[tuple[Check, Fix]]:
    for check in CHECKS.values():
        for fix in check.fixes:
            yield check, fix


def rendered(stack: Stack, ref: CheckRef, check: Check, fix: Fix) -> list[tuple[str, str]]:
    """(template, command) for each command of ``fix``, as a failing check's report has them."""
    facts = healthy_facts(stack)
    built = payloads.build(ref, check, stack, facts, "failed", "broken", fix, stack.secrets())
    registry.remember([stack])
    try:
        hint = render(built)
    finally:
        registry.remember([])
    assert hint.check.fix.step == fix.step
    templates = [c.template for c in fix.commands]
    commands = [c for _, c in hint.commands]
    # "restart the services that use it" is dropped where none do, nothing else.
    kept = [t for t in templates if "$dependents" not in t or len(commands) == len(templates)]
    assert len(kept) == len(commands), (templates, commands)
    return list(zip(kept, commands, strict=True))


@pytest.mark.parametrize(("name", "anchor"), [(c.name, f.step.anchor) for c, f in every_fix()])
def test_every_placeholder_of_every_command_is_filled(
    name: str, anchor: str, tmp_path: Path
) -> None:
    stack = load_testbed(tmp_path)
    check = CHECKS[name]
    fix = next(f for f in check.fixes if f.step.anchor == anchor)
    places = refs(stack, check)
    assert places, f"{name} applies nowhere on the testbed"
    for ref in places:
        for template, command in rendered(stack, ref, check, fix):
            for name_ in Template(template).get_identifiers():
                assert f"<{name_}>" not in command, (ref.key, template, command)
            assert "$" not in command, (ref.key, command)


@pytest.mark.parametrize("how", ["stack file", "environment"], ids=["docker_host", "DOCKER_HOST"])
def test_every_docker_command_of_every_fix_reaches_the_stack_s_engine(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if how == "environment":
        monkeypatch.setenv("DOCKER_HOST", "ssh://ops@prod")
        stack = load_testbed(tmp_path)
    else:
        stack = load_testbed(tmp_path, docker_host="ssh://ops@prod")
    seen = 0
    for check, fix in every_fix():
        for ref in refs(stack, check):
            for template, command in rendered(stack, ref, check, fix):
                if template.startswith(("$compose", "$docker")):
                    assert command.startswith("DOCKER_HOST=ssh://ops@prod docker"), command
                    seen += 1
                elif template.startswith("${on_host}"):
                    # A command on the Docker host itself runs there, over SSH.
                    assert command.startswith("ssh ops@prod -- "), command
                    seen += 1
                else:
                    assert "docker" not in command, command
    assert seen > 20


# --- Through the real run: the bench's checks, plugin and reporter ---


def failure_text(stdout: str, test: str) -> str:
    """The FAILURES (or ERRORS) section of one test, without its header line."""
    part = stdout.split(f" {test} _")[1]
    return part.split("\n", 1)[1].split("\n____")[0].split("\n====")[0]


def test_failure_report_starts_with_the_hint(checkrun: CheckRun) -> None:
    checkrun.scenario(BACKEND_OOM)
    result = checkrun.run("-rf")
    out = result.stdout.str()
    lines = failure_text(out, "test_container_stable[backend]").splitlines()
    assert lines[0] == (
        "backend:container_stable: Relieve memory or CPU pressure "
        "(docs/runbook.md#resolve-resources)"
    )
    assert lines[1].startswith("  [read-only]   docker inspect --format")
    live = next(line for line in lines if line.startswith("live: "))
    values = dict(item.split("=", 1) for item in live.removeprefix("live: ").split(", "))
    assert values["container"] == "tb-backend-1"
    assert (values["exit_code"], values["oom_killed"], values["restart_count"]) == (
        "137",
        "True",
        "1",
    )
    assert "Traceback" not in out and "def test_container_stable" not in out
    # The short summary line quotes the headline (cut to the terminal's width).
    result.stdout.fnmatch_lines(
        ["FAILED checks/test_container.py::test_container_stable[[]backend[]] - backend:c*"]
    )


def test_an_oom_kill_that_loops_is_fixed_as_an_oom_kill(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {
            "container:backend": {
                "oom_killed": True,
                "state": "restarting",
                "exit_code": 137,
                "restart_count": 4,
                "recent_ooms": 3,
            }
        }
    )
    result = checkrun.run()
    stable = checkrun.checks()["backend:container_stable"]
    assert stable["outcome"] == "failed" and stable["role"] == "root_cause"
    assert "OOM-killed" in stable["evidence"] and "crash-looping" in stable["evidence"]
    assert stable["fix_step"] == runbook.RESOLVE_RESOURCES.link
    [oom] = [
        f for f in CHECKS["container_stable"].other_fixes if f.step == runbook.RESOLVE_RESOURCES
    ]
    assert stable["safety"] == [c.safety.value for c in oom.commands]
    assert stable["remediation"] == [
        "docker inspect --format "
        "'oom={{.State.OOMKilled}} mem_limit={{.HostConfig.Memory}}' tb-backend-1",
        "docker stats --no-stream tb-backend-1",
        "docker compose -p tb -f /srv/compose.yml up -d backend",
    ]
    # Not the crash-loop step's commands: restarting waits for the next kill.
    crash_loop = CHECKS["container_stable"].fix
    assert crash_loop.step == runbook.RESOLVE_CRASH_LOOP
    assert not any("grep" in c or "restarts=" in c for c in stable["remediation"])
    # The container being down is the loop's consequence.
    assert checkrun.checks()["backend:container_running"]["caused_by"] == (
        "backend:container_stable"
    )
    assert (
        "ROOT CAUSE backend:container_stable: Relieve memory or CPU pressure "
        "(docs/runbook.md#resolve-resources)" in result.stdout.str()
    )


def test_a_consequence_says_what_to_fix_first_and_changes_nothing(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run("--junitxml=junit.xml")
    out = result.stdout.str()
    first = "consequence of db:container_running — fix that first"
    failures = {
        case.get("name"): case.find("failure")
        for case in ET.parse(checkrun.path / "junit.xml").iter("testcase")
    }
    for key in DB_CONSEQUENCES:
        where, check = key.split(":")
        test = f"test_{check}[{where}]"
        text = failure_text(out, test)
        assert text.startswith(first), (key, text)
        failure = failures[test]
        assert failure is not None, key
        assert (failure.text or "").startswith(first), key
        assert failure.get("message", "").startswith(first), key
        for shown in (text, failure.text or "", failure.get("message", "")):
            assert "[mutating]" not in shown and "[destructive]" not in shown, key
    # pg_ready's own fix restarts the database: the consequence keeps only its reads.
    pg = failure_text(out, "test_pg_ready[db]")
    assert "[read-only]   docker compose -p tb -f /srv/compose.yml exec db pg_isready" in pg
    assert "restart" not in pg
    assert checkrun.checks()["db:pg_ready"]["remediation"] == []


def test_http_evidence_without_a_timing_names_none(checkrun: CheckRun) -> None:
    error = "GET http://127.0.0.1:18000/health: connection refused"
    checkrun.scenario({"http:backend": {"error": error, "elapsed_s": None, "status": None}})
    checkrun.run()
    http = checkrun.checks()["backend:http_health"]
    assert http["outcome"] == "failed"
    assert http["evidence"] == error
    assert "None" not in http["evidence"]


def test_http_evidence_with_a_timing_says_it(checkrun: CheckRun) -> None:
    checkrun.scenario({"http:backend": {"status": 503, "elapsed_s": 2.5, "body": "busy"}})
    checkrun.run()
    evidence = checkrun.checks()["backend:http_health"]["evidence"]
    assert evidence == "GET http://127.0.0.1:18000/health answered 503 after 2.5 s: busy"


HOSTILE_URL = "http://127.0.0.1:18000/health?probe=1&next=$(id)"
# libpq decodes the URL: the user is o'brien, the database "sched; $(id)".
HOSTILE_DSN = f"postgresql://o%27brien:{PASSWORD}@127.0.0.1:15432/sched%3B%20%24%28id%29"
HOSTILE = {
    **TESTBED,
    "services": {
        "db": {**TESTBED["services"]["db"], "postgres_dsn": HOSTILE_DSN},
        "backend": {**TESTBED["services"]["backend"], "health_url": HOSTILE_URL},
    },
}


def test_values_from_the_stack_file_are_shell_quoted(checkrun: CheckRun) -> None:
    checkrun.scenario({"http:backend": {"status": 503}}, stacks=[HOSTILE])
    checkrun.run()
    curl = checkrun.checks()["backend:http_health"]["remediation"][0]
    assert shlex.split(curl) == ["curl", "-v", HOSTILE_URL]

    checkrun.scenario({"pg:db": {"in_use": 27}}, stacks=[HOSTILE])
    checkrun.run()
    pg = checkrun.checks()["db:pg_connections"]
    assert pg["outcome"] == "failed" and pg["role"] == "root_cause"
    for command in pg["remediation"][:2]:
        words = shlex.split(command)
        assert words[words.index("-U") + 1] == "o'brien", command
        assert words[words.index("-d") + 1] == "sched; $(id)", command


@pytest.mark.parametrize("how", ["stack file", "environment"], ids=["docker_host", "DOCKER_HOST"])
def test_a_run_s_commands_reach_the_stack_s_engine(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if how == "environment":
        monkeypatch.setenv("DOCKER_HOST", "ssh://ops@prod")
        spec = TESTBED
    else:
        spec = {**TESTBED, "docker_host": "ssh://ops@prod"}
    checkrun.scenario({**DB_STOPPED, **BACKEND_OOM}, stacks=[spec])
    result = checkrun.run()
    commands = [c for row in checkrun.summary()["checks"] for c in row["remediation"]]
    shown = re.findall(
        r"^ +\[(?:read-only|mutating|destructive)\] +(.+)$", result.stdout.str(), re.M
    )
    assert len(commands) >= 6 and len(shown) >= len(commands)
    for command in commands + shown:
        if "docker" in command:
            assert command.startswith("DOCKER_HOST=ssh://ops@prod docker"), command


def test_a_crashed_check_keeps_its_traceback_under_the_hint(checkrun: CheckRun) -> None:
    # No CPU at all: the check divides by zero, a bug of the checker's, not the stack's.
    checkrun.scenario({"stats:db": {"online_cpus": 0}})
    out = checkrun.run().stdout.str()
    failure = failure_text(out, "test_cpu_headroom[db]")
    assert failure.startswith("db:cpu_headroom: Relieve memory or CPU pressure")
    assert "evidence: ZeroDivisionError: " in failure
    assert "traceback:" in failure and "percent = stats.cpu_percent / cores" in failure
    row = checkrun.checks()["db:cpu_headroom"]
    assert row["outcome"] == "error" and row["role"] == "blind_spot"
    assert checkrun.summary()["root_causes"] == []


def test_could_not_check_reads_as_its_reason(checkrun: CheckRun) -> None:
    checkrun.scenario({"pg:db": {"blind": "probe failed: OSError: no route to the probe"}})
    result = checkrun.run()
    result.assert_outcomes(errors=2, passed=18, skipped=2)
    out = result.stdout.str()
    assert "could not check db:pg_ready: probe failed: OSError: no route to the probe" in out
    checks = checkrun.checks()
    assert checks["db:pg_ready"]["outcome"] == "error"
    assert checks["db:pg_ready"]["evidence"] == "probe failed: OSError: no route to the probe"
    assert checks["db:pg_ready"]["remediation"] == []
    assert checkrun.summary()["root_causes"] == []
    assert checkrun.summary()["status"] == "unknown"


def test_nothing_is_executed(checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the reporter ran a command: {args}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    monkeypatch.setattr("os.system", refuse)
    checkrun.scenario({"container:db": {"state": "exited", "exit_code": 0}})
    result = checkrun.run()
    assert result.parseoutcomes()["failed"] >= 1
    assert "up -d db" in result.stdout.str()
