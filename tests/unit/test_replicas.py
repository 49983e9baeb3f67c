"""Every replica of a scaled service is checked: ids, facts, partial outage vs service down.

Fabricated facts (factbench): the scenario's ``@replicas`` is what the
collection-time listing found; ``container:backend#2`` is what the probes saw
of replica 2. The verdicts, the root-cause analysis and the reports are real.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from definitions import definitions
from reportbench import CheckRun, remediation

from stackcheck.config import Service, Stack
from stackcheck.model import CheckRef
from stackcheck.probes import docker_probe
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.docker_probe import (
    MAX_REPLICAS,
    NUMBER_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    find_containers,
    replica_number,
    replicas_of,
)
from stackcheck.probes.gather import discover
from stackcheck.report.causes import analyse
from stackcheck.where import needs_of, refs

pytest_plugins = ("pytester",)

CHECKS = definitions()
THREE = {"@replicas": {"backend": [1, 2, 3]}}
# Per replica: running, stable, healthy, logs, memory, cpu and the 3 edge checks
# (9 x 3); once for the service: http_health; db: 6 + pg_ready, pg_connections,
# pg_data_disk; once for the stack: the 3 host checks.
SCALED_ITEMS = 9 * 3 + 1 + 9 + 3
EXITED = {"state": "exited", "exit_code": 0, "finished_at": "2026-11-29T01:00:00Z"}


def _stopped(*numbers: int) -> dict[str, dict[str, Any]]:
    """What the probes see of stopped backend replicas."""
    found: dict[str, dict[str, Any]] = {}
    for n in numbers:
        unit = f"backend#{n}"
        why = {"error": f"cannot look inside {unit}: container is exited"}
        found[f"container:{unit}"] = dict(EXITED)
        found[f"stats:{unit}"] = why
        found[f"net:{unit}->db"] = why
    return found


HTTP_DOWN = {"http:backend": {"status": 503, "body": "no upstream", "json_status": None}}


# ---------------------------------------------------------------- pure logic


STACK = Stack(
    Path("stack.toml"),
    "testbed",
    "tb",
    {
        "db": Service("db", postgres_dsn="postgresql://u@db/x", port=5432),
        "backend": Service("backend", depends_on=("db",), health_url="http://b/health", port=8000),
        "front": Service("front", depends_on=("backend",)),
    },
)


def test_refs_name_each_replica_of_container_checks_only() -> None:
    replicas = {"backend": [3, 1, 2]}
    running = refs(STACK, CHECKS["container_running"], replicas)
    assert [r.where for r in running] == ["db", "backend#1", "backend#2", "backend#3", "front"]
    # pg/http go through the service's DSN or URL: once per service.
    assert [r.where for r in refs(STACK, CHECKS["http_health"], replicas)] == ["backend"]
    edges = refs(STACK, CHECKS["net_port"], replicas)
    assert [r.where for r in edges] == [
        "backend#1->db",
        "backend#2->db",
        "backend#3->db",
        "front->backend",
    ]
    # One container is no replica set: the id stays the service's name.
    assert [r.where for r in refs(STACK, CHECKS["container_running"], {"backend": [1]})] == [
        "db",
        "backend",
        "front",
    ]


def test_a_replica_reads_its_own_container_and_the_service_dsn() -> None:
    ref = CheckRef("testbed", "pg_data_disk", "db", replica=2)
    needs = {(n.kind, n.unit, n.key) for n in needs_of(ref, CHECKS["pg_data_disk"])}
    kinds = {kind for kind, _, _ in needs}
    for kind, unit, key in needs:
        assert unit == ("db#2" if kind != "pg" else "db"), needs
        assert key == f"{kind}:{unit}"
    assert "datafs" in kinds


@dataclass
class FakeContainer:
    name: str
    status: str
    number: str | None
    service: str = "backend"
    labels: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = {PROJECT_LABEL: "tb", SERVICE_LABEL: self.service}
        if self.number is not None:
            self.labels[NUMBER_LABEL] = self.number


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = self
        self._containers = containers

    def list(self, **_: Any) -> list[FakeContainer]:
        return list(self._containers)


def test_replicas_by_number_the_live_one_of_a_number_wins() -> None:
    containers = [
        FakeContainer("tb-backend-3", "running", "3"),
        FakeContainer("tb-backend-1", "exited", "1"),
        # A recreate in progress: two containers share number 2; the live one stands for it.
        FakeContainer("aaa_tb-backend-2", "created", "2"),
        FakeContainer("tb-backend-2", "running", "2"),
        # Labels are data: odd numbers take no part.
        FakeContainer("odd-1", "running", "²"),
        FakeContainer("odd-2", "running", "-1"),
        FakeContainer("odd-3", "running", "1e3"),
        FakeContainer("odd-4", "running", "9" * 40),
        FakeContainer("odd-5", "running", None),
    ]
    groups = find_containers(FakeClient(containers), STACK)  # type: ignore[arg-type]
    found = replicas_of(groups["backend"])
    assert list(found) == [1, 2, 3]
    assert [c.name for c in found.values()] == ["tb-backend-1", "tb-backend-2", "tb-backend-3"]
    assert replica_number(containers[4]) is None  # type: ignore[arg-type]


def test_discovery_bounds_the_replicas_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    many = [FakeContainer(f"tb-backend-{n}", "running", str(n)) for n in range(1, 106)]
    many.append(FakeContainer("tb-db-1", "running", "1", service="db"))
    monkeypatch.setattr(docker_probe, "connect", lambda stack, deadline: FakeClient(many))
    found = discover(STACK, Deadline(5))
    assert found.blind is None
    assert found.replicas == {"backend": list(range(1, MAX_REPLICAS + 1))}
    assert found.over_cap == {"backend": 105}
    assert found.container("backend", 7).name == "tb-backend-7"
    assert found.container("backend", 106) is None
    assert found.container("db", None).name == "tb-db-1"


def test_a_refusing_engine_is_a_blind_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(stack: Stack, deadline: Deadline) -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(docker_probe, "connect", refuse)
    found = discover(STACK, Deadline(5))
    assert found.replicas == {}
    assert found.blind and "connection refused" in found.blind


def _analysis(
    *keys: str, replicas: dict[str, int] | None = None
) -> tuple[list[str], dict[str, str]]:
    failing = {}
    for key in keys:
        where, check = key.split(":")
        source, _, target = where.partition("->")
        service, _, number = source.partition("#")
        ref = CheckRef("testbed", check, service, target or None, int(number) if number else None)
        failing[ref] = CHECKS[check]
    found = analyse(STACK, failing, replicas if replicas is not None else {"backend": 3})
    return [r.key for r in found.roots], {c.key: r.key for c, r in found.cause.items()}


def test_one_replica_down_is_a_root_of_its_own_and_explains_only_itself() -> None:
    roots, cause = _analysis(
        "backend#2:container_running",
        "backend#2:memory_headroom",
        "backend#2->db:net_resolve",
        "backend:http_health",
        "front:logs_clean",
    )
    # 1 of 3 down does not explain the service's API, nor what needs the service.
    assert roots == ["backend#2:container_running", "backend:http_health"]
    assert cause == {
        "backend#2:memory_headroom": "backend#2:container_running",
        "backend#2->db:net_resolve": "backend#2:container_running",
        "front:logs_clean": "backend:http_health",
    }


def test_every_replica_down_is_the_service_down() -> None:
    keys = [f"backend#{n}:container_running" for n in (1, 2, 3)]
    keys += [f"backend#{n}:memory_headroom" for n in (1, 2, 3)]
    roots, cause = _analysis(*keys, "backend:http_health", "front:logs_clean")
    assert roots == [f"backend#{n}:container_running" for n in (1, 2, 3)]
    assert cause["backend:http_health"] == "backend#1:container_running"
    assert cause["front:logs_clean"] == "backend#1:container_running"
    # Each replica's consequence names its own replica's root.
    for n in (1, 2, 3):
        assert cause[f"backend#{n}:memory_headroom"] == f"backend#{n}:container_running"


def test_two_of_three_down_is_still_partial() -> None:
    roots, cause = _analysis(
        "backend#1:container_running", "backend#3:container_running", "backend:http_health"
    )
    assert roots == [
        "backend#1:container_running",
        "backend#3:container_running",
        "backend:http_health",
    ]
    assert cause == {}


def test_what_explains_the_service_explains_each_replica() -> None:
    roots, cause = _analysis(
        "db:container_running", "backend#2:logs_clean", "backend#2->db:net_port", "db:pg_ready"
    )
    assert roots == ["db:container_running"]
    assert cause == {
        "db:pg_ready": "db:container_running",
        "backend#2:logs_clean": "db:container_running",
        "backend#2->db:net_port": "db:container_running",
    }


# ------------------------------------------------- the real checks, fabricated


def test_ids_name_each_replica(checkrun: CheckRun) -> None:
    checkrun.scenario(THREE)
    result = checkrun.run("--co", "-q")
    ids = set(re.findall(r"::(test_\w+\[[^\]]+\])", result.stdout.str()))
    assert len(ids) == SCALED_ITEMS, sorted(ids)
    for n in (1, 2, 3):
        assert f"test_container_running[backend#{n}]" in ids
        assert f"test_net_port[backend#{n}->db]" in ids
    assert "test_container_running[backend]" not in ids
    assert "test_http_health[backend]" in ids
    assert "test_container_running[db]" in ids


def test_a_blind_engine_collects_one_id_per_service(checkrun: CheckRun) -> None:
    checkrun.scenario({"@replicas": {"@blind": "Docker engine unreachable at unix:///x"}})
    result = checkrun.run("--co", "-q")
    ids = set(re.findall(r"::(test_\w+\[[^\]]+\])", result.stdout.str()))
    assert "test_container_running[backend]" in ids
    assert not any("#" in i for i in ids), sorted(ids)


def test_healthy_replicas_pass(checkrun: CheckRun) -> None:
    checkrun.scenario(THREE)
    result = checkrun.run()
    result.assert_outcomes(passed=SCALED_ITEMS - 4, skipped=4)  # no HEALTHCHECK: 3 + db
    assert checkrun.summary()["status"] == "healthy"


def test_one_replica_stopped_is_a_partial_outage(checkrun: CheckRun) -> None:
    checkrun.scenario({**THREE, **_stopped(2)})
    result = checkrun.run()
    section = "\n".join(remediation(result))
    summary = checkrun.summary()
    assert summary["root_causes"] == ["backend#2:container_running"]
    checks = checkrun.checks()
    failed = {k for k, c in checks.items() if c["outcome"] == "failed"}
    assert failed == {
        "backend#2:container_running",
        "backend#2:memory_headroom",
        "backend#2:cpu_headroom",
        "backend#2->db:net_resolve",
        "backend#2->db:net_ping",
        "backend#2->db:net_port",
    }
    root = checks["backend#2:container_running"]
    assert root["replica"] == 2
    assert root["replicas"] == {
        "count": 3,
        "failing": [2],
        "running": [1, 3],
        "outage": "partial",
    }
    assert checks["backend:http_health"]["replica"] is None
    assert (
        "replicas: partial outage: fails on 1 of 3 replicas of backend (#2); "
        "2 of 3 serving (running: #1, #3)" in section
    )
    assert "container tb-backend-2 is exited" in section
    # Fix commands that act on one replica keep the others (and the scale).
    assert "up -d --scale backend=3 backend" in section
    assert re.search(r"up -d backend\b", section) is None


def test_one_replica_down_does_not_explain_the_failing_api(checkrun: CheckRun) -> None:
    checkrun.scenario({**THREE, **_stopped(3), **HTTP_DOWN})
    checkrun.run()
    summary = checkrun.summary()
    assert summary["root_causes"] == ["backend#3:container_running", "backend:http_health"]


def test_every_replica_stopped_is_the_service_down(checkrun: CheckRun) -> None:
    checkrun.scenario({**THREE, **_stopped(1, 2, 3), **HTTP_DOWN})
    result = checkrun.run()
    checks = checkrun.checks()
    assert checkrun.summary()["root_causes"] == [
        f"backend#{n}:container_running" for n in (1, 2, 3)
    ]
    assert checks["backend:http_health"]["caused_by"] == "backend#1:container_running"
    assert checks["backend#3->db:net_port"]["caused_by"] == "backend#3:container_running"
    assert checks["backend#2:container_running"]["replicas"] == {
        "count": 3,
        "failing": [1, 2, 3],
        "running": [],
        "outage": "total",
    }
    assert (
        "replicas: service down: fails on 3 of 3 replicas of backend (#1, #2, #3); "
        "0 of 3 serving (running: none)" in "\n".join(remediation(result))
    )


def test_one_replica_oom_killed_while_all_serve(checkrun: CheckRun) -> None:
    oom = {"oom_killed": True, "exit_code": 137, "restart_count": 1, "recent_ooms": 1}
    checkrun.scenario({**THREE, "container:backend#1": oom})
    result = checkrun.run()
    assert checkrun.summary()["root_causes"] == ["backend#1:container_stable"]
    assert (
        "replicas: partial outage: fails on 1 of 3 replicas of backend (#1); "
        "3 of 3 serving (running: #1, #2, #3)" in "\n".join(remediation(result))
    )


def test_metrics_tell_replicas_apart(checkrun: CheckRun) -> None:
    checkrun.scenario({**THREE, **_stopped(2)})
    checkrun.run()
    text = (checkrun.reports / "stackcheck-testbed.prom").read_text()
    line = (
        'stackcheck_check_success{{check="{}",replica="{}",service="backend",'
        'stack="testbed",target=""}} {}'
    )
    assert line.format("container_running", 2, "0.0") in text
    assert line.format("container_running", 1, "1.0") in text
    assert line.format("http_health", "", "1.0") in text


def test_under_xdist_workers_collect_the_controllers_replicas(checkrun: CheckRun) -> None:
    checkrun.scenario({**THREE, **_stopped(2)})
    result = checkrun.run("-n", "2", subprocess=True)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 6, result.stdout.str()[-2000:]
    assert checkrun.summary()["root_causes"] == ["backend#2:container_running"]
