"""Fabricated facts: the real checks, the real plugin and reporter, no Docker.

A pytester directory gets a copy of the real ``checks/`` (definitions, test
functions, conftest), a stack file, and ``scenario.json``; the plugin module
``fabricated`` (loaded with ``-p fabricated``) answers stackcheck's gathering
hook with healthy facts for every need, then applies the scenario's changes:

    {"container:db": {"state": "exited", "exit_code": 0},
     "net:backend->db": {"resolve": "failed"},
     "stats:backend": {"blind": "Docker engine unreachable at unix:///x"}}

Keys are probe keys (``kind:service``, ``net:source->target``,
``command:service:check``; ``kind:service#N`` for replica N of a scaled
service); values set fields of the facts dataclasses. So a scenario says what
the probes saw, and every verdict is the real check's.

The key ``@replicas`` says which services run several containers, as the
collection-time discovery would have found them: ``{"@replicas": {"backend":
[1, 2, 3]}}``; ``{"@replicas": {"@blind": "why"}}`` fabricates a blind engine.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from stackcheck.config import Stack
from stackcheck.probes import postgres
from stackcheck.probes.docker_probe import compose_command
from stackcheck.probes.facts import (
    CommandFacts,
    ContainerFacts,
    DataFsFacts,
    HostFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    StackFacts,
    StatsFacts,
)
from stackcheck.probes.gather import Discovery, Need

ROOT = Path(__file__).resolve().parent.parent.parent
CHECKS = ROOT / "checks"
MiB = 2**20


def healthy(stack: Stack, need: Need) -> Any:
    """What a probe sees on a healthy stack."""
    name = need.unit
    project = stack.compose_project
    if need.kind == "container":
        labels = {
            "com.docker.compose.version": "2.20.2",
            "com.docker.compose.project.working_dir": "/srv",
            "com.docker.compose.project.config_files": "compose.yml",
        }
        return ContainerFacts(
            need.service,
            found=True,
            name=f"{project}-{need.service}-{need.replica or 1}",
            id="0123456789abcdef0123",
            state="running",
            exit_code=0,
            started_at="2026-11-28T02:00:00Z",
            finished_at="0001-01-01T00:00:00Z",
            mem_limit=256 * MiB,
            compose_cmd=compose_command(labels, project, stack),
            image=f"{project}-{name}:1.0",
            image_id="sha256:" + "1" * 64,
            created_at="2026-11-28T01:59:59Z",
            config_hash="c" * 64,
            env_digests={"": "0" * 16, "PATH": "1" * 16},
            env_key_id="k" * 12,
        )
    if need.kind == "stats":
        return StatsFacts(
            name,
            mem_usage=100 * MiB,
            mem_limit=256 * MiB,
            mem_limited=True,
            cpu_percent=5.0,
            online_cpus=2,
        )
    if need.kind == "logs":
        return LogFacts(name, lines_read=50)
    if need.kind == "pg":
        facts = postgres.describe(name, stack.services[need.service].postgres_dsn or "")
        facts.ping, facts.in_use, facts.max_connections, facts.reserved = "accepting", 5, 30, 3
        facts.server_version = "15.8"
        return facts
    if need.kind == "net":
        target = need.target or ""
        port = stack.services[target].port
        return NetFacts(
            name, target, port, resolve="ok", address="172.18.0.2", ping="ok", port_open="ok"
        )
    if need.kind == "http":
        url = stack.services[need.service].health_url or ""
        return HttpFacts(
            name, url, status=200, elapsed_s=0.01, body='{"status":"ok"}', json_status="ok"
        )
    if need.kind == "datafs":
        return DataFsFacts(
            name,
            path="/var/lib/postgresql/data",
            mount="volume db-data",
            size_kb=100_000,
            used_kb=40_000,
            avail_kb=60_000,
        )
    if need.kind == "command":
        return CommandFacts(name, need.check, need.argv, exit_code=0, output="PONG\n")
    if need.kind == "host":
        return HostFacts(
            "this machine",
            engine_processes=["dockerd --iptables=false"],
            disk_mount="/",
            disk_size_kb=10_000_000,
            disk_avail_kb=6_000_000,
            mem_total_kb=16_000_000,
            mem_available_kb=12_000_000,
        )
    raise ValueError(f"no healthy facts for {need.kind}")


def _table(facts: StackFacts, need: Need) -> tuple[dict[Any, Any], Any]:
    if need.kind == "net":
        return facts.net, (need.unit, need.target or "")
    if need.kind == "command":
        return facts.commands, (need.check, need.unit)
    if need.kind == "host":
        return {}, None
    table = {"container": facts.containers, "stats": facts.stats, "logs": facts.logs}.get(need.kind)
    if table is None:
        table = getattr(facts, need.kind)
    return table, need.unit


REPLICAS = "@replicas"


def discovered(changes: dict[str, Any]) -> Discovery:
    """What the collection-time listing finds: the scenario's ``@replicas``."""
    given = dict(changes.get(REPLICAS) or {})
    blind = given.pop("@blind", None)
    return Discovery(blind=blind, replicas={k: sorted(v) for k, v in given.items() if len(v) > 1})


def fabricate(
    stack: Stack, needs: frozenset[Need], changes: dict[str, dict[str, Any]]
) -> StackFacts:
    """Healthy facts for ``needs``, then ``changes`` applied by probe key.

    As the real gathering, it adds the container facts of every replica of a
    scaled service that a check reads (a replica's report counts its siblings).
    """
    facts = StackFacts()
    replicas = discovered(changes).replicas
    facts.replicas = {k: list(v) for k, v in replicas.items()}
    needs = frozenset(
        needs
        | {
            Need("container", n.service, replica=number)
            for n in needs
            if n.kind != "container"
            for number in replicas.get(n.service, [])
        }
    )
    for need in needs:
        table, key = _table(facts, need)
        found = healthy(stack, need)
        for name, value in changes.get(need.key, {}).items():
            known = {f.name for f in fields(found)}
            if name not in known:
                raise KeyError(f"{need.key}: {type(found).__name__} has no field {name!r}")
            setattr(found, name, value)
        if need.kind == "host":  # one per stack, not a table
            facts.host = found
        else:
            table[key] = found
        facts.durations[need.key] = 0.25
    return facts


PLUGIN = '''
"""Answers stackcheck's gathering hook with fabricated facts (tests/unit/factbench.py)."""
import json
from pathlib import Path

import pytest

from factbench import discovered, fabricate


def _scenario(stack):
    scenario = json.loads((Path(stack.path).parent / "scenario.json").read_text())
    return scenario.get(stack.name, {})


@pytest.hookimpl(tryfirst=True)
def pytest_stackcheck_gather(stack, needs):
    return fabricate(stack, needs, _scenario(stack))


@pytest.hookimpl(tryfirst=True)
def pytest_stackcheck_discover(stack):
    return discovered(_scenario(stack))
'''


def lay_out(directory: Path) -> None:
    """Copy the real checks and the fabricating plugin into ``directory``."""
    shutil.copytree(CHECKS, directory / "checks", ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "fabricated.py").write_text(PLUGIN)
    shutil.copy(Path(__file__), directory / "factbench.py")
    (directory / "scenario.json").write_text("{}")


def write_scenario(directory: Path, by_stack: dict[str, dict[str, dict[str, Any]]]) -> None:
    (directory / "scenario.json").write_text(json.dumps(by_stack))
