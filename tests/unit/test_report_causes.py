"""Root cause before consequences: the rules on the real checks' definitions, then the run."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from definitions import definitions
from reportbench import BACKEND_OOM, DB_CONSEQUENCES, DB_STOPPED, TESTBED, CheckRun

from stackcheck.config import Service, Stack, load_stack
from stackcheck.model import CheckRef
from stackcheck.probes.gather import DOCKER_KINDS
from stackcheck.report.causes import analyse
from stackcheck.where import needs_of, refs

pytest_plugins = ("pytester",)

CHECKS = definitions()
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


def ref(key: str, stack: str = "testbed") -> CheckRef:
    """``db:pg_ready`` or ``backend->db:net_port`` as a CheckRef."""
    where, check = key.split(":")
    service, _, target = where.partition("->")
    return CheckRef(stack, check, service, target or None)


def causes(*failing: str, stack: Stack = STACK) -> tuple[list[str], dict[str, str]]:
    """Root causes and consequence -> cause, with each check's real definition."""
    refs_ = [ref(k, stack.name) for k in failing]
    analysis = analyse(stack, {r: CHECKS[r.check] for r in refs_})
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


def test_a_full_host_disk_explains_a_stopped_database_and_all_it_takes_down() -> None:
    roots, cause = causes(
        "backend:http_health",
        "db:pg_ready",
        "db:container_running",
        "db:pg_data_disk",
        "backend->db:net_port",
        "@host:host_disk",
    )
    assert roots == ["@host:host_disk"]
    assert set(cause.values()) == {"@host:host_disk"}
    assert set(cause) == {
        "db:container_running",
        "db:pg_data_disk",
        "db:pg_ready",
        "backend->db:net_port",
        "backend:http_health",
    }


def test_the_host_explains_containers_and_resources_but_not_the_api_alone() -> None:
    # An API failing on its own (a code bug) is not the host's doing: two roots.
    roots, cause = causes("@host:host_memory", "backend:http_health")
    assert roots == ["@host:host_memory", "backend:http_health"]
    assert cause == {}
    # Through a database short of memory, it is: the chain goes on by the other rules.
    roots, cause = causes("@host:host_memory", "backend:http_health", "db:memory_headroom")
    assert roots == ["@host:host_memory"]
    assert cause == {
        "db:memory_headroom": "@host:host_memory",
        "backend:http_health": "@host:host_memory",
    }


def test_a_dead_engine_is_the_root_of_the_host_s_other_checks() -> None:
    roots, cause = causes("@host:host_disk", "@host:host_engine_running")
    assert roots == ["@host:host_engine_running"]
    assert cause == {"@host:host_disk": "@host:host_engine_running"}


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
    # Same layer, same rank: neither explains the other (they sort by name).
    roots, cause = causes("db:memory_headroom", "db:pg_data_disk", "db:cpu_headroom")
    assert roots == ["db:cpu_headroom", "db:memory_headroom", "db:pg_data_disk"]
    assert cause == {}


def test_a_full_data_disk_explains_the_database_and_the_endpoint() -> None:
    roots, cause = causes("db:pg_ready", "db:pg_data_disk", "backend:http_health")
    assert roots == ["db:pg_data_disk"]
    assert cause == {"db:pg_ready": "db:pg_data_disk", "backend:http_health": "db:pg_data_disk"}


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
    analysis = analyse(cyclic, {r: CHECKS[r.check] for r in failing})
    assert set(analysis.roots) | set(analysis.cause) == set(failing)
    assert analysis.roots


def test_a_dependency_s_fault_comes_first_whatever_the_file_order() -> None:
    # backend is listed before db: only the depth in the depends_on graph puts
    # db first, both among the roots and as the cause a consequence names.
    backend_first = Stack(
        Path("stack.toml"),
        "testbed",
        "tb",
        {
            "backend": Service("backend", depends_on=("db",), health_url="http://b/health"),
            "db": Service("db", postgres_dsn="postgresql://u@db/x", port=5432),
        },
    )
    roots, cause = causes(
        "backend:http_health",
        "backend:container_stable",
        "db:container_running",
        stack=backend_first,
    )
    assert roots == ["db:container_running", "backend:container_stable"]
    assert cause == {"backend:http_health": "db:container_running"}


def remediation(stdout: str) -> str:
    return stdout.split(" Remediation ")[1]


def test_terminal_shows_the_root_cause_then_its_consequences(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 + len(DB_CONSEQUENCES)
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
    assert "BLIND SPOT" not in section
    # The section comes after pytest's short summary, before the final count.
    stdout = result.stdout.str()
    assert stdout.index("short test summary info") < stdout.index(" Remediation ")
    assert stdout.index(" Remediation ") < stdout.index(f"{outcomes['failed']} failed")


def test_summary_json_marks_caused_by(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    checks = checkrun.checks()
    assert checkrun.summary()["root_causes"] == ["db:container_running"]
    assert checks["db:container_running"]["caused_by"] is None
    assert checks["db:container_running"]["role"] == "root_cause"
    for key in DB_CONSEQUENCES:
        assert checks[key]["caused_by"] == "db:container_running", key
        assert checks[key]["role"] == "consequence", key
    assert checks["backend:container_running"] == {
        **checks["backend:container_running"],
        "outcome": "passed",
        "caused_by": None,
        "role": None,
    }


def test_two_faults_print_two_root_causes_dependency_first(checkrun: CheckRun) -> None:
    checkrun.scenario({**DB_STOPPED, **BACKEND_OOM})
    section = remediation(checkrun.run().stdout.str())
    roots = re.findall(r"^ROOT CAUSE (\S+):", section, re.MULTILINE)
    assert roots == ["db:container_running", "backend:container_stable"]
    # backend:http_health and logs_clean stay the database's consequences.
    assert f"UNHEALTHY, 2 root causes, {len(DB_CONSEQUENCES)} consequences" in section


def test_depth_orders_a_run_whose_file_lists_the_dependent_first(checkrun: CheckRun) -> None:
    backend_first = {**TESTBED, "services": dict(reversed(TESTBED["services"].items()))}
    assert list(backend_first["services"]) == ["backend", "db"]
    checkrun.scenario({**DB_STOPPED, **BACKEND_OOM}, stacks=[backend_first])
    result = checkrun.run()
    summary = checkrun.summary()
    assert summary["root_causes"] == ["db:container_running", "backend:container_stable"]
    assert checkrun.checks()["backend:http_health"]["caused_by"] == "db:container_running"
    section = remediation(result.stdout.str())
    roots = re.findall(r"^ROOT CAUSE (\S+):", section, re.MULTILINE)
    assert roots == ["db:container_running", "backend:container_stable"]


def test_passing_areas_get_one_line_each(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {"net:backend->db": {"port_open": "failed", "detail": {"port": "connection refused"}}}
    )
    section = remediation(checkrun.run().stdout.str())
    assert "  ok  container: 4 checks passed (backend, db)" in section
    assert "  ok  resources: 5 checks passed (backend, db)" in section
    assert "  ok  network:" not in section
    assert "ROOT CAUSE backend->db:net_port" in section


def test_several_stacks_are_analysed_apart(checkrun: CheckRun) -> None:
    services = {"db": {}, "backend": {"depends_on": ["db"]}}
    testbed = {"name": "testbed", "compose_project": "tb", "services": services}
    other = {"name": "other", "compose_project": "ot", "services": services}
    checkrun.scenario(
        {},
        stacks=[testbed, other],
        by_stack={
            "testbed": {"container:db": {"state": "exited", "exit_code": 1}},
            "other": {
                "net:backend->db": {"ping": "failed"},
                "logs:backend": {"match_count": 1, "matches": ["ERROR: db unreachable"]},
            },
        },
    )
    result = checkrun.run("-rf", "--summary-json=all.json")
    assert result.parseoutcomes()["failed"] == 3
    result.stdout.fnmatch_lines(
        ["FAILED checks/test_network.py::test_net_ping[[]other/backend->db[]] - *"]
    )
    summary = json.loads((checkrun.path / "all.json").read_text())
    assert summary["root_causes"] == ["testbed/db:container_running", "other/backend->db:net_ping"]
    checks = {c["key"]: c for c in summary["checks"]}
    assert checks["other/backend:logs_clean"]["caused_by"] == "other/backend->db:net_ping"
    # The same check on the other stack passed: a fault never crosses stacks.
    assert checks["testbed/backend:logs_clean"]["outcome"] == "passed"
    assert [s["status"] for s in summary["stacks"]] == ["unhealthy", "unhealthy"]


# The db's Docker-based probes blind (the checker could not see), the API failing.
BLIND_DB = "Docker engine unreachable at unix:///x"
DB_BLIND_API_DOWN: dict[str, dict[str, Any]] = {
    "container:db": {"blind": BLIND_DB},
    "stats:db": {"blind": BLIND_DB},
    "logs:db": {"blind": BLIND_DB},
    "datafs:db": {"blind": BLIND_DB},
    "http:backend": {"status": 503, "body": '{"status":"unhealthy"}', "json_status": "unhealthy"},
}


def test_blind_spots_are_never_root_causes_nor_causes(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_BLIND_API_DOWN)
    result = checkrun.run()
    summary = checkrun.summary()
    checks = checkrun.checks()
    blind = {k for k, c in checks.items() if c["outcome"] == "error"}
    # Every db check that reads one of the blinded probes, and no other.
    stack = load_stack(checkrun.path / "testbed.toml")
    blinded = {key.split(":")[0] for key in DB_BLIND_API_DOWN if key != "http:backend"}
    expected = {
        r.key
        for check in CHECKS.values()
        for r in refs(stack, check)
        if r.service == "db" and any(n.kind in blinded for n in needs_of(r, check))
    }
    assert blind == expected and len(blind) >= 5
    assert summary["status"] == "unhealthy"
    assert summary["root_causes"] == ["backend:http_health"]
    assert checks["backend:http_health"]["role"] == "root_cause"
    assert sorted(summary["blind_spots"]) == sorted(blind)
    for key in blind:
        assert checks[key]["role"] == "blind_spot" and checks[key]["caused_by"] is None, key
        assert checks[key]["evidence"] == BLIND_DB, key
    assert not {c["caused_by"] for c in checks.values()} & blind
    section = remediation(result.stdout.str())
    assert "UNHEALTHY, 1 root cause, 0 consequences" in section
    assert "BLIND SPOT, could not check" in section
    assert section.index("BLIND SPOT") < section.index("ROOT CAUSE backend:http_health")
    assert section.count("BLIND SPOT") == 1  # one reason, one block
    assert f"    {BLIND_DB}" in section
    assert "ROOT CAUSE db:" not in section


def engine_unreachable(checkrun: CheckRun) -> dict[str, dict[str, Any]]:
    """Every Docker-based probe of the testbed blind; PostgreSQL and HTTP healthy."""
    stack = load_stack(checkrun.path / "testbed.toml")
    keys = {n.key for c in CHECKS.values() for r in refs(stack, c) for n in needs_of(r, c)}
    keys |= {f"container:{s}" for s in stack.services}  # the hints read every container
    kinds = {k.split(":")[0] for k in keys}
    assert kinds > DOCKER_KINDS - {"command"} and {"pg", "http"} <= kinds
    return {k: {"blind": BLIND_DB} for k in keys if k.split(":")[0] in DOCKER_KINDS}


def test_an_unreachable_engine_alone_is_unknown_not_unhealthy(checkrun: CheckRun) -> None:
    checkrun.scenario(engine_unreachable(checkrun))
    result = checkrun.run("--junitxml=junit.xml")
    assert result.ret == 6
    summary = checkrun.summary()
    assert summary["status"] == "unknown"
    assert summary["root_causes"] == []
    docker_based = {n for n, c in CHECKS.items() if DOCKER_KINDS & set(c.facts)}
    outcomes: dict[str, set[str]] = {}
    for c in summary["checks"]:
        outcomes.setdefault(c["name"], set()).add(c["outcome"])
    assert set(outcomes) == set(CHECKS)
    for name, seen in outcomes.items():
        assert seen == ({"error"} if name in docker_based else {"passed"}), name
    assert set(summary["blind_spots"]) == {
        c["key"] for c in summary["checks"] if c["name"] in docker_based
    }
    section = remediation(result.stdout.str())
    assert "ROOT CAUSE" not in section
    assert "testbed (compose project tb): UNKNOWN" in section and "BLIND SPOT" in section
    cases = {
        case.get("name"): case for case in ET.parse(checkrun.path / "junit.xml").iter("testcase")
    }
    for c in summary["checks"]:
        case = cases[c["nodeid"].split("::")[-1]]
        kinds = {child.tag for child in case}
        if c["name"] in docker_based:
            assert "error" in kinds and "failure" not in kinds, c["key"]
        else:
            assert not kinds & {"error", "failure"}, c["key"]
