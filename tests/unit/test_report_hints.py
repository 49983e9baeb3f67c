"""Live fix hints: the runbook step and its commands, filled in with real values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reportbench import CheckRun

from stackcheck.config import Service, Stack
from stackcheck.report import registry
from stackcheck.report.catalogue import Safety
from stackcheck.report.hints import render

pytest_plugins = ("pytester",)


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
        docker_host="ssh://ops@prod-1",
    )
    registry.remember([stack])
    yield stack
    registry.remember([])


def payload(check: str, service: str, target: str | None = None, **context: Any) -> dict[str, Any]:
    return {
        "stack": "prod",
        "compose_project": "residency",
        "check": check,
        "service": service,
        "target": target,
        "evidence": "it broke",
        "duration_s": 0.1,
        "context": context,
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


def test_docker_commands_reach_the_stack_s_engine(stack: Stack) -> None:
    hint = render(payload("memory_headroom", "backend", container="res_backend_1"))
    assert hint.commands[0] == (
        Safety.READ_ONLY,
        "DOCKER_HOST=ssh://ops@prod-1 docker stats --no-stream res_backend_1",
    )


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
    assert len(hint.commands) == 2


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
    assert "live: connections_in_use=29, connections_usable=27, max_connections=30" in text


def test_failure_report_starts_with_the_hint(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {
            "backend:container_stable": {
                "evidence": "OOM-killed (exit code 137), 3 restarts in 300s",
                "context": {"exit_code": 137, "oom_killed": True, "restart_count": 3},
            }
        }
    )
    result = checkrun.run("-rf")
    out = result.stdout.str()
    failure = out.split("test_container_stable[backend]")[1]
    lines = failure.split("\n")[1:]
    assert lines[0] == (
        "backend:container_stable: Find why a container keeps restarting "
        "(docs/runbook.md#resolve-crash-loop)"
    )
    assert lines[1].startswith("  [read-only]   docker inspect --format")
    assert "live: container=tb-backend-1, exit_code=137, oom_killed=True, restart_count=3" in out
    assert "Traceback" not in out and "def _check" not in out
    result.stdout.fnmatch_lines(
        ["FAILED test_checks.py::test_container_stable[[]backend[]] - backend:container_sta*"]
    )


def test_a_crashed_check_keeps_its_traceback_under_the_hint(checkrun: CheckRun) -> None:
    checkrun.scenario({"db:pg_ready": {"crash": "probe bug"}})
    out = checkrun.run().stdout.str()
    failure = out.split("_ test_pg_ready[db] _")[1]
    assert failure.lstrip("_\n").startswith("db:pg_ready: Bring the database back")
    assert "evidence: RuntimeError: probe bug" in failure
    assert "traceback:" in failure and 'raise RuntimeError(verdict["crash"])' in failure


def test_a_setup_error_keeps_pytest_s_report(checkrun: CheckRun) -> None:
    checkrun.scenario({"db:pg_ready": {"setup_error": "engine unreachable"}})
    result = checkrun.run()
    result.assert_outcomes(errors=1, passed=17)
    out = result.stdout.str()
    assert "RuntimeError: engine unreachable" in out
    assert checkrun.checks()["db:pg_ready"]["outcome"] == "error"
    assert checkrun.checks()["db:pg_ready"]["evidence"] == "RuntimeError: engine unreachable"
    assert checkrun.summary()["root_causes"] == ["db:pg_ready"]


def test_nothing_is_executed(checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the reporter ran a command: {args}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    monkeypatch.setattr("os.system", refuse)
    checkrun.scenario({"db:container_running": {"evidence": "exited"}})
    result = checkrun.run()
    result.assert_outcomes(failed=1, passed=17)
    assert "up -d db" in result.stdout.str()
