"""Root cause before consequences: the rules, then the plugin's ordering."""

from __future__ import annotations

import re
from pathlib import Path

from reportbench import BACKEND_OOM, DB_CONSEQUENCES, DB_STOPPED, CheckRun

from stackcheck.config import Service, Stack
from stackcheck.model import CheckRef
from stackcheck.report.causes import analyse

pytest_plugins = ("pytester",)

STACK = Stack(
    Path("stack.toml"),
    "testbed",
    "tb",
    {
        "db": Service("db", postgres_dsn="postgresql://u@db/x", port=5432),
        "cache": Service("cache", port=6379),
        "backend": Service("backend", depends_on=("db", "cache"), health_url="http://b/health"),
    },
)


def ref(key: str) -> CheckRef:
    """``db:pg_ready`` or ``backend->db:net_port`` as a CheckRef of STACK."""
    where, check = key.split(":")
    service, _, target = where.partition("->")
    return CheckRef("testbed", check, service, target or None)


def causes(*failing: str) -> tuple[list[str], dict[str, str]]:
    analysis = analyse(STACK, [ref(k) for k in failing])
    return [r.key for r in analysis.roots], {c.key: r.key for c, r in analysis.cause.items()}


def test_stopped_db_explains_everything_that_needs_it() -> None:
    roots, cause = causes(
        "backend:http_health",
        "backend->db:net_port",
        "db:pg_ready",
        "backend->db:net_resolve",
        "db:container_running",
        "backend:logs_clean",
        "db:container_healthy",
    )
    assert roots == ["db:container_running"]
    assert set(cause.values()) == {"db:container_running"}
    assert len(cause) == 6


def test_two_independent_faults_stay_two_root_causes() -> None:
    roots, cause = causes(
        "db:container_running", "db:pg_ready", "backend:container_stable", "backend:http_health"
    )
    assert roots == ["db:container_running", "backend:container_stable"]
    # Both explain the endpoint; the dependency's fault is named.
    assert cause == {
        "db:pg_ready": "db:container_running",
        "backend:http_health": "db:container_running",
    }


def test_a_dependency_never_explains_a_service_s_own_container() -> None:
    roots, _ = causes("db:pg_ready", "backend:container_running", "backend:memory_headroom")
    assert roots == ["db:pg_ready", "backend:container_running"]


def test_crash_loop_explains_the_container_being_down() -> None:
    roots, cause = causes("backend:container_running", "backend:container_stable")
    assert roots == ["backend:container_stable"]
    assert cause == {"backend:container_running": "backend:container_stable"}


def test_frozen_database_is_a_readiness_root_cause() -> None:
    roots, cause = causes("db:pg_ready", "db:container_healthy", "backend:http_health")
    assert roots == ["db:pg_ready"]
    assert cause == {"db:container_healthy": "db:pg_ready", "backend:http_health": "db:pg_ready"}


def test_full_connection_table_explains_the_endpoint() -> None:
    roots, cause = causes("db:pg_connections", "backend:http_health", "backend:logs_clean")
    assert roots == ["db:pg_connections"]
    assert set(cause.values()) == {"db:pg_connections"}


def test_partition_roots_at_the_first_failing_network_check() -> None:
    roots, cause = causes("backend->db:net_ping", "backend->db:net_port", "backend:http_health")
    assert roots == ["backend->db:net_ping"]
    assert cause == {
        "backend->db:net_port": "backend->db:net_ping",
        "backend:http_health": "backend->db:net_ping",
    }


def test_network_checks_rely_only_on_the_layers_they_need() -> None:
    # A hung database closes its port but still resolves and answers ping.
    roots, cause = causes("db:pg_ready", "backend->db:net_port", "backend->db:net_resolve")
    assert roots == ["db:pg_ready", "backend->db:net_resolve"]
    assert cause == {"backend->db:net_port": "db:pg_ready"}


def test_a_fault_on_one_edge_does_not_explain_another_edge() -> None:
    roots, _ = causes("backend->db:net_port", "backend->cache:net_port")
    assert roots == ["backend->db:net_port", "backend->cache:net_port"]


def test_sibling_checks_are_independent() -> None:
    roots, _ = causes("db:memory_headroom", "db:cpu_headroom")
    assert roots == ["db:memory_headroom", "db:cpu_headroom"]


def test_logs_are_a_symptom_never_a_cause() -> None:
    roots, cause = causes("db:logs_clean", "backend:http_health")
    assert roots == ["db:logs_clean", "backend:http_health"]
    assert cause == {}


def test_a_depends_on_cycle_still_names_root_causes() -> None:
    cyclic = Stack(
        Path("s.toml"),
        "loop",
        "loop",
        {"a": Service("a", depends_on=("b",)), "b": Service("b", depends_on=("a",))},
    )
    failing = [CheckRef("loop", "http_health", "a"), CheckRef("loop", "http_health", "b")]
    analysis = analyse(cyclic, failing)
    assert set(analysis.roots) | set(analysis.cause) == set(failing)
    assert analysis.roots


def remediation(stdout: str) -> str:
    return stdout.split(" Remediation ")[1]


def test_terminal_shows_the_root_cause_then_its_consequences(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    result.assert_outcomes(failed=len(DB_STOPPED), passed=18 - len(DB_STOPPED))
    section = remediation(result.stdout.str())
    lines = section.splitlines()
    root = next(i for i, line in enumerate(lines) if line.startswith("ROOT CAUSE "))
    assert lines[root] == (
        "ROOT CAUSE db:container_running: Start a stopped container "
        "(docs/runbook.md#resolve-start-container)"
    )
    assert "[mutating]    docker compose -p tb -f /srv/compose.yml up -d db" in section
    listed = re.findall(r"^      <- (\S+): ", section, re.MULTILINE)
    assert sorted(listed) == DB_CONSEQUENCES
    assert section.count("ROOT CAUSE") == 1
    # The section comes after pytest's short summary, before the final count.
    stdout = result.stdout.str()
    assert stdout.index("short test summary info") < stdout.index(" Remediation ")
    assert stdout.index(" Remediation ") < stdout.index("failed, 6 passed")


def test_summary_json_marks_caused_by(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    checks = checkrun.checks()
    assert checkrun.summary()["root_causes"] == ["db:container_running"]
    assert checks["db:container_running"]["caused_by"] is None
    for key in DB_CONSEQUENCES:
        assert checks[key]["caused_by"] == "db:container_running", key
    assert checks["backend:container_running"] == {
        **checks["backend:container_running"],
        "outcome": "passed",
        "caused_by": None,
    }


def test_two_faults_print_two_root_causes_dependency_first(checkrun: CheckRun) -> None:
    checkrun.scenario({**DB_STOPPED, **BACKEND_OOM})
    section = remediation(checkrun.run().stdout.str())
    roots = re.findall(r"^ROOT CAUSE (\S+):", section, re.MULTILINE)
    assert roots == ["db:container_running", "backend:container_stable"]
    assert "UNHEALTHY, 2 root causes, 11 consequences" in section


def test_passing_areas_get_one_line_each(checkrun: CheckRun) -> None:
    checkrun.scenario({"backend->db:net_port": {"evidence": "connection refused"}})
    section = remediation(checkrun.run().stdout.str())
    assert "  ok  container: 4 checks passed (backend, db)" in section
    assert "  ok  resources: 4 checks passed (backend, db)" in section
    assert "  ok  network:" not in section
    assert "ROOT CAUSE backend->db:net_port" in section


def test_several_stacks_are_analysed_apart(checkrun: CheckRun) -> None:
    other = {
        "name": "other",
        "compose_project": "ot",
        "services": {"db": {}, "backend": {"depends_on": ["db"]}},
    }
    testbed = {
        "name": "testbed",
        "compose_project": "tb",
        "services": {"db": {}, "backend": {"depends_on": ["db"]}},
    }
    checkrun.scenario(
        {
            "testbed/db:container_running": {"evidence": "exited"},
            "other/backend->db:net_ping": {"evidence": "no route"},
            "other/backend:logs_clean": {"evidence": "errors"},
        },
        stacks=[testbed, other],
    )
    result = checkrun.run("-rf")
    assert result.parseoutcomes()["failed"] == 3
    result.stdout.fnmatch_lines(["FAILED test_checks.py::test_net_ping[[]other/backend->db[]] - *"])
    summary = checkrun.summary()
    assert summary["root_causes"] == ["testbed/db:container_running", "other/backend->db:net_ping"]
    assert checkrun.checks()["other/backend:logs_clean"]["caused_by"] == (
        "other/backend->db:net_ping"
    )
    assert [s["status"] for s in summary["stacks"]] == ["unhealthy", "unhealthy"]
